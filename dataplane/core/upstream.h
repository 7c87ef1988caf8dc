/*
 * upstream: the registry of stable upstream pool ids ("host:port" -> id), which outlive snapshot swaps so that
 * keep-alive connections to a target survive a new configuration that still lists it.
 */
#ifndef CPH_UPSTREAM_H
#define CPH_UPSTREAM_H

#include <stdint.h>

/**
 * Returns the stable id (1, 2, ...) of the authority "host:port" (host lower-case, IPv6 in brackets), allocating a
 * new one on first sight. Thread-safe (a mutex: called at compile time on the control thread, never per request).
 */
uint32_t cph_upstream_pool_id(const char *authority);
/** Number of ids handed out so far (ids are 1..n). */
uint32_t cph_upstream_num_pools(void);

#endif
