/*
 * authn_cache: a small per-thread cache of bearer tokens that verified, so a client that sends the same token on every
 * request pays for the signature check once per snapshot rather than once per request.
 *
 * An entry is the token's exact bytes and the principal it verified to, tied to the snapshot it was verified against:
 * a new snapshot (new keys, settings or revocations) misses every older entry. A hit re-checks only what time can
 * change - exp with the snapshot's leeway -; nbf and iat cannot become invalid later. Only tokens that verified are
 * stored, so a hostile token always takes the full path (core/authn.c).
 */
#ifndef CPH_AUTHN_CACHE_H
#define CPH_AUTHN_CACHE_H

#include <time.h>
#include "dataplane/core/principal.h"
#include "dataplane/core/snapshot.h"

#define CPH_AUTHN_CACHE_SLOTS 512 /* per thread, direct-mapped */

/**
 * Looks token up for snap at time now. On a hit copies the principal into pool (the entry may be replaced while the
 * request still runs) and returns 1; 0 on a miss. Calling thread only.
 */
int cph_authn_cache_get(const cph_snapshot_t *snap, const char *token, size_t len, time_t now, h2o_mem_pool_t *pool,
                        cph_principal_t *out);
/** Remembers that token verified against snap to principal p (kind USER). Calling thread only. */
void cph_authn_cache_put(const cph_snapshot_t *snap, const char *token, size_t len, const cph_principal_t *p);

#endif
