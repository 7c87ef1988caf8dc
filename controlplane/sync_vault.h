/*
 * sync_vault: the control plane's thread that keeps the Vault secrets the services' upstream credentials name
 * (store_secret.h) current, so a new secret version reaches the data planes inside a new snapshot and no data plane
 * ever talks to Vault. It also holds the signing key read from Vault when one is configured (vault_signing_path).
 */
#ifndef CPH_SYNC_VAULT_H
#define CPH_SYNC_VAULT_H

#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/integrations.h"

#define CPH_SYNC_VAULT_BACKOFF_MIN_S 1 /* after a failure: 1 s, doubling up to poll_s */
#define CPH_SYNC_VAULT_LIST_TIMEOUT_MS 5000

typedef struct st_cph_sync_vault_t cph_sync_vault_t;

/**
 * Starts the thread on db (borrowed; it must outlive the thread) with the settings s (copied; vault_addr must be
 * set, and either vault_token or vault_role_id + vault_secret_id). The thread logs in (AppRole) or looks the token up,
 * renews the token once 2/3 of its TTL has passed, re-logs in (AppRole) after a 403, and checks every secret path
 * the services name: at once when never read, then every poll_s, after a failure 1 s doubling up to poll_s. A path
 * whose current version differs from the stored one is read and stored through cph_db_write (actor "vault": a new
 * snapshot version); an unchanged version writes nothing. Every failure keeps what is stored and marks the
 * integration degraded with its reason kind. With vault_signing_path set, that secret's private_key (and kid) is
 * the active signing key: a new version rotates it in (actor "vault"), and its private half stays in memory only
 * (cph_signing_hold; signing fails {unavailable} after a restart until Vault has answered). Returns NULL with err
 * {invalid|internal} when it cannot start.
 */
cph_sync_vault_t *cph_sync_vault_start(cph_db_t *db, const cph_integration_settings_t *s, cph_error_t *err);
/** Stops the thread (an ongoing call is aborted within a second), wipes the token and frees v (NULL is fine). */
void cph_sync_vault_stop(cph_sync_vault_t *v);
/**
 * LIST of the KV mount under prefix ("" = the top; segments, trailing '/' optional), from the calling thread with a
 * 5 s timeout and the thread's current token: a new sorted array of names (folders end with '/'), or NULL with err
 * {invalid: bad prefix | not_found: nothing there | unavailable: Vault failed or no token yet}.
 */
json_t *cph_sync_vault_list(cph_sync_vault_t *v, const char *prefix, cph_error_t *err);

#endif
