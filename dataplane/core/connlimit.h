/*
 * connlimit: open client connections per peer address, shared by every worker of a data plane, for the gateway's
 * per-IP connection cap (snapshot gateway.connections.max_per_ip). The peer is the TCP peer: at accept time nothing
 * else is known, so behind a load balancer the cap must stay off (every connection comes from the balancer).
 *
 * One hash table in 64 stripes, each with its own mutex: an accept and a close take one stripe lock for a few
 * hundred nanoseconds; requests never touch it.
 */
#ifndef CPH_CONNLIMIT_H
#define CPH_CONNLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct st_cph_connlimit_t cph_connlimit_t;

/** What a counted connection keeps to be released: its address as 16 bytes (IPv4 mapped into IPv6). */
typedef struct st_cph_connlimit_key_t {
    uint8_t addr[16];
} cph_connlimit_key_t;

/** A new, empty table. Aborts on out of memory. */
cph_connlimit_t *cph_connlimit_new(void);
/** Frees the table (NULL is fine); connections still counted are forgotten. */
void cph_connlimit_free(cph_connlimit_t *l);
/**
 * Counts a connection from sa (AF_INET or AF_INET6; anything else is never limited: 0 and *counted 0) when the
 * address has fewer than max open; max 0 = no cap (nothing counted). Returns 0 (*counted 1 when it was counted, and
 * key filled for the release), or -1 when the address is at the cap (nothing counted).
 */
int cph_connlimit_acquire(cph_connlimit_t *l, const struct sockaddr *sa, uint32_t max, cph_connlimit_key_t *key, int *counted);
/** Forgets one counted connection of key (from cph_connlimit_acquire). */
void cph_connlimit_release(cph_connlimit_t *l, const cph_connlimit_key_t *key);
/** The connections counted for sa right now (tests and metrics). */
uint32_t cph_connlimit_count(cph_connlimit_t *l, const struct sockaddr *sa);

#endif
