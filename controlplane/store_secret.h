/*
 * store_secret: the Vault secrets the services' upstream credentials are built from (migrations/0008), kept in the
 * database so that a control plane restarted while Vault is down still builds the same snapshot. Written only by the
 * Vault sync thread (sync_vault.c), inside cph_db_write; read by the snapshot build (snapbuild_credentials.c).
 *
 * A secret's values never leave this module except into the snapshot body: its audit rows, its public list and every
 * error carry the path, the version and the key names only.
 */
#ifndef CPH_STORE_SECRET_H
#define CPH_STORE_SECRET_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"

/** Every distinct credentials.vault_path of the services, sorted: a new array of strings, or NULL with err. Lock held. */
json_t *cph_store_secret_paths(cph_db_t *db, cph_error_t *err);
/** The stored secret: a new {"path","version","data":{key: value},"fetched_at"}, or NULL with err {not_found|internal}. */
json_t *cph_store_secret_get(cph_db_t *db, const char *path, cph_error_t *err);
/**
 * Inside cph_db_write: stores (insert or replace) path's data (an object of strings) at version, and fills change
 * ("update"/"create", entity_type "vault_secret", before/after {"path","version","keys":[sorted key names]}).
 */
int cph_store_secret_put(cph_db_t *db, const char *path, int64_t version, const json_t *data, cph_db_change_t *change,
                         cph_error_t *err);
/**
 * Inside cph_db_write: deletes the secrets no service references any more; fills change ("delete", "vault_secret",
 * before {"paths": [...]}) when it deleted something, and sets *deleted to their count.
 */
int cph_store_secret_prune(cph_db_t *db, size_t *deleted, cph_db_change_t *change, cph_error_t *err);
/** For the integrations API: a new array [{"path","version","keys":[...],"fetched_at"}] by path; never values. */
json_t *cph_store_secret_list_public(cph_db_t *db, cph_error_t *err);

#endif
