/*
 * api_integrations: GET /api/v1/integrations - what the Vault and Consul sync threads last did - and
 * GET /api/v1/integrations/vault/paths?prefix=, a LIST on Vault to help an admin find a credentials.vault_path.
 *
 * The state comes from integrations.c (each sync thread publishes it after every pass), the settings in force from
 * cph_integration_settings() (addresses and intervals; never a token, a role id or a secret id), and the stored
 * secrets from store_secret.c's public view (versions and key names). No secret value is ever in an answer.
 *
 * The LIST goes to Vault from this API thread (cph_sync_vault_list, its own 5 s timeout), so the prefix is checked
 * here first, strictly: it becomes part of a URL path on another server, and a hostile one ("..", "%2f", a control
 * byte) must be a 400 without any request to Vault - even when Vault is disabled.
 */
#include <microhttpd.h>
#include <stdatomic.h>
#include <string.h>
#include "controlplane/api_integrations.h"
#include "controlplane/integrations.h"
#include "controlplane/store_secret.h"
#include "controlplane/sync_vault.h"
#include "proto/log.h"

#define MODULE "cp/api/integrations"
#define SEGMENT_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

static _Atomic(struct st_cph_sync_vault_t *) vault;

void cph_api_integrations_set_vault(struct st_cph_sync_vault_t *v)
{
    atomic_store(&vault, v);
}

int cph_api_integrations_check_prefix(const char *prefix, cph_error_t *err)
{
    size_t len = prefix != NULL ? strlen(prefix) : 0;

    if (len == 0)
        return 0;
    if (len > CPH_VAULT_PREFIX_MAX)
        return cph_error_set(err, "invalid", NULL, "prefix: at most %d bytes", CPH_VAULT_PREFIX_MAX);
    if (prefix[len - 1] == '/')
        --len; /* a folder, as Vault's LIST names it */
    for (size_t at = 0, seg; at <= len; at += seg + 1) {
        seg = strcspn(prefix + at, "/");
        if (at + seg > len)
            seg = len - at;
        if (seg == 0 || strspn(prefix + at, SEGMENT_CHARS) < seg || (seg == 1 && prefix[at] == '.') ||
            (seg == 2 && prefix[at] == '.' && prefix[at + 1] == '.'))
            return cph_error_set(err, "invalid", NULL,
                                 "prefix: segments of [A-Za-z0-9._-] joined by single '/', no '.' or '..' segment, "
                                 "no leading '/' (one trailing '/' is allowed)");
    }
    return 0;
}

/* ---------------------------------------------------------------- the state */

/* Adds the settings in force that tell an admin what this control plane talks to (never a credential). */
static void add_settings(json_t *o, cph_integration_t which)
{
    const cph_integration_settings_t *s = cph_integration_settings();

    if (which == CPH_INTEGRATION_VAULT) {
        if (s->vault_addr[0] == '\0')
            return;
        json_object_set_new(o, "addr", json_string(s->vault_addr));
        json_object_set_new(o, "kv_mount", json_string(s->vault_kv_mount));
        json_object_set_new(o, "poll_s", json_integer(s->vault_poll_s));
        if (json_object_get(o, "auth") == NULL)
            json_object_set_new(o, "auth", json_string(s->vault_role_id[0] != '\0' ? "approle" : "token"));
        json_object_set_new(o, "signing_path", s->vault_signing_path[0] != '\0' ? json_string(s->vault_signing_path) : json_null());
    } else {
        if (s->consul_addr[0] == '\0')
            return;
        json_object_set_new(o, "addr", json_string(s->consul_addr));
        json_object_set_new(o, "datacenter", s->consul_datacenter[0] != '\0' ? json_string(s->consul_datacenter) : json_null());
        json_object_set_new(o, "wait_s", json_integer(s->consul_wait_s));
        json_object_set_new(o, "acl_token", json_boolean(s->consul_token[0] != '\0')); /* whether one is set, only */
    }
}

/* The stored secrets' public view into o["secrets"]; -1 with err on a store failure. */
static int add_secrets(cph_api_req_t *req, json_t *o, cph_error_t *err)
{
    json_t *list;

    cph_db_lock(req->db);
    list = cph_store_secret_list_public(req->db, err);
    cph_db_unlock(req->db);
    if (list == NULL)
        return -1;
    json_object_set_new(o, "secrets", list);
    return 0;
}

/* {"vault", "consul"} completed with the settings and the stored secrets. NULL with err. */
static json_t *state(cph_api_req_t *req, cph_error_t *err)
{
    json_t *all = cph_integrations_json(), *v = json_object_get(all, "vault");

    add_settings(v, CPH_INTEGRATION_VAULT);
    add_settings(json_object_get(all, "consul"), CPH_INTEGRATION_CONSUL);
    if (cph_integration_settings()->vault_addr[0] != '\0' && add_secrets(req, v, err) != 0) {
        json_decref(all);
        return NULL;
    }
    return all;
}

/* ---------------------------------------------------------------- vault/paths */

/* ?prefix= ("" when absent) into *out; -1 when it holds a NUL byte (%00), which a C string would silently cut. */
static int prefix_arg(cph_api_req_t *req, const char **out)
{
    const char *v = NULL;
    size_t n = 0;

    *out = "";
    if (req->conn == NULL ||
        MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, "prefix", strlen("prefix"), &v, &n) != MHD_YES || v == NULL)
        return 0;
    *out = v;
    return strlen(v) == n ? 0 : -1;
}

static void vault_paths(cph_api_req_t *req)
{
    struct st_cph_sync_vault_t *v = atomic_load(&vault);
    cph_error_t err = {0};
    const char *prefix;
    json_t *keys;

    if (prefix_arg(req, &prefix) != 0) {
        cph_api_error(req, 400, "invalid", NULL, "prefix: must not contain a NUL byte");
        return;
    }
    if (cph_api_integrations_check_prefix(prefix, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    if (v == NULL) {
        cph_api_error(req, 503, "unavailable", NULL, "Vault is not configured (--vault-addr)");
        return;
    }
    if ((keys = cph_sync_vault_list(v, prefix, &err)) == NULL) {
        if (strcmp(err.code, "unavailable") == 0)
            cph_api_error(req, 503, "unavailable", NULL, err.msg[0] != '\0' ? err.msg : "Vault did not answer");
        else
            cph_api_fail(req, &err);
        return;
    }
    if (json_is_object(keys)) { /* {"keys": [...]} or a bare array: take the array */
        json_t *inner = json_incref(json_object_get(keys, "keys"));
        json_decref(keys);
        keys = inner;
    }
    if (!json_is_array(keys)) {
        json_decref(keys);
        cph_api_error(req, 500, "internal", NULL, "internal error");
        return;
    }
    cph_api_reply(req, 200, json_pack("{s:s, s:o}", "prefix", prefix, "keys", keys));
}

/* ---------------------------------------------------------------- the resource */

void cph_api_integrations(cph_api_req_t *req)
{
    cph_error_t err = {0};
    json_t *all;

    if (req->key != NULL && strcmp(req->key, "vault/paths") == 0) {
        vault_paths(req);
        return;
    }
    if (req->key != NULL && strcmp(req->key, "vault") != 0 && strcmp(req->key, "consul") != 0) {
        cph_api_error(req, 404, "not_found", NULL, "no such integration (vault, consul, vault/paths)");
        return;
    }
    if ((all = state(req, &err)) == NULL) {
        cph_api_fail(req, &err);
        return;
    }
    if (req->key != NULL) {
        json_t *one = json_incref(json_object_get(all, req->key));
        json_decref(all);
        all = one;
    }
    cph_api_reply(req, 200, all);
}
