/*
 * compile/cache: the compiled cache policy of a route (proto/PROTOCOL.md section 5, route policies.cache), built by
 * cph_cache_compile (compile/compile.h) into the snapshot's arena and read by filter/cache.c and filter/proxy.c.
 */
#ifndef CPH_COMPILE_CACHE_H
#define CPH_COMPILE_CACHE_H

#include <stdint.h>

#define CPH_CACHE_DEFAULT_MAX_TTL_S 86400
#define CPH_CACHE_DEFAULT_MAX_BODY (1024 * 1024)
#define CPH_CACHE_DEFAULT_MAX_BYTES (64ull * 1024 * 1024) /* gateway.cache.max_bytes when the body has none */
#define CPH_CACHE_MAX_TTL_S 31536000
#define CPH_CACHE_MAX_BODY_LIMIT (64ull * 1024 * 1024)
#define CPH_CACHE_MAX_BYTES_LIMIT (16ull * 1024 * 1024 * 1024)

typedef struct st_cph_cache_policy_t {
    uint64_t ttl_s;          /* freshness when the upstream gives none; 0 = only what the upstream marks cacheable */
    uint64_t max_ttl_s;      /* caps any freshness */
    uint64_t max_body_bytes; /* a bigger body is passed through, not stored */
    int share_authenticated; /* requests with Authorization, X-API-Key or Cookie may use the cache */
} cph_cache_policy_t;

#endif
