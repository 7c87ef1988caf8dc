/*
 * api_integrations: the admin view of the Vault and Consul integrations (docs/admin-api.md "Integrations"):
 * GET /api/v1/integrations, GET /api/v1/integrations/{vault|consul} and GET /api/v1/integrations/vault/paths?prefix=.
 */
#ifndef CPH_API_INTEGRATIONS_H
#define CPH_API_INTEGRATIONS_H

#include "controlplane/api.h"

struct st_cph_sync_vault_t;

#define CPH_VAULT_PREFIX_MAX 256

/**
 * The Vault sync thread GET .../vault/paths asks (NULL: Vault is disabled, the endpoint answers 503). main() sets it
 * before the admin API starts and clears it only after the API stopped.
 */
void cph_api_integrations_set_vault(struct st_cph_sync_vault_t *v);

/**
 * Checks a ?prefix= of .../vault/paths: "" (the mount's root), or at most CPH_VAULT_PREFIX_MAX bytes of segments of
 * [A-Za-z0-9._-] joined by single '/', no '.' or '..' segment, no leading '/', one trailing '/' allowed (a folder as
 * Vault lists it). Returns 0, or -1 with err {invalid} (the message never repeats the prefix).
 */
int cph_api_integrations_check_prefix(const char *prefix, cph_error_t *err);

/**
 * The "integrations" resource (GET only):
 * - no key: 200 {"vault": {...}, "consul": {...}} (cph_integrations_json, plus the settings in force - addresses,
 *   mount, intervals - and for an enabled Vault "secrets": cph_store_secret_list_public: versions and key names);
 * - "vault" / "consul": that one object;
 * - "vault/paths": ?prefix= checked (400 invalid), then 200 {"prefix", "keys": [...]} from a LIST on Vault
 *   (503 unavailable when Vault is disabled or does not answer, 404 not_found when nothing is under the prefix);
 * - anything else: 404.
 */
void cph_api_integrations(cph_api_req_t *req);

#endif
