/*
 * authapi: the control plane's auth API (docs/access.md section 6) on its own libmicrohttpd daemon -
 * POST /auth/login, /auth/refresh, /auth/logout. The data planes forward these paths here unchanged.
 */
#ifndef CPH_AUTHAPI_H
#define CPH_AUTHAPI_H

#include <stdint.h>
#include "controlplane/db.h"
#include "controlplane/loginlimit.h"

#define CPH_AUTHAPI_BODY_MAX (16 * 1024)
#define CPH_AUTHAPI_CONNECTIONS_MAX 64
#define CPH_AUTHAPI_CONNECTION_TIMEOUT_S 10
#define CPH_AUTHAPI_PRUNE_EVERY_S 3600        /* how often a login prunes expired refresh tokens */
#define CPH_AUTHAPI_PRUNE_GRACE_S (24 * 3600) /* expired refresh tokens are kept this long (reuse still detected) */

typedef struct st_cph_authapi_t cph_authapi_t;

/**
 * Starts the auth API on listen ("HOST:PORT", HOST an IPv4 address, "localhost" or "[IPv6]"; port 0 picks a free
 * one) with a thread per connection (at most CPH_AUTHAPI_CONNECTIONS_MAX, each closed after
 * CPH_AUTHAPI_CONNECTION_TIMEOUT_S idle). Token lifetimes, issuer and audience come from cph_settings_auth(). limits
 * NULL = cph_loginlimit_defaults. Hashes one dummy password first (for logins of unknown users), so it takes a
 * fraction of a second. db is borrowed. Returns NULL with err filled.
 */
cph_authapi_t *cph_authapi_start(const char *listen, cph_db_t *db, const cph_loginlimit_config_t *limits, cph_error_t *err);
/** The TCP port it listens on. */
uint16_t cph_authapi_port(const cph_authapi_t *a);
/** Stops accepting, finishes the running requests and frees a (NULL is fine). */
void cph_authapi_stop(cph_authapi_t *a);

#endif
