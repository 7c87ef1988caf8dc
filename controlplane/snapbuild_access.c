/*
 * snapbuild_access: the access sections of the snapshot body - "auth", "groups", "endpoints", "api_keys" and
 * "revoked" (docs/access.md section 1) - which the data planes compile into their authn and authz stages.
 *
 * Same rules as snapbuild.c: a pure function of the rows (and of the auth settings, fixed for the process), every
 * array in the order the contract gives, every member written with its value. The sections are always present, empty
 * when there is nothing, so a data plane never has to tell "no rules" from "an older control plane".
 *
 * "auth" carries the external issuers that have keys (store_issuer.c: "issuers", sorted by name, each with its keys
 * sorted by kid); the member is absent when there is none, and an issuer whose keys were never fetched is left out
 * (it could verify nothing).
 *
 * An endpoint rule's "rate_limits" is written only when the rule has its own list (an array, possibly empty); null -
 * the route's limits apply - is left out, so rules without one build the body they always did.
 *
 * What is left out on purpose: revoked api keys (the data plane never needs to know a dead key), admin-only
 * timestamps, and anything secret beyond an api key's SHA-256 (the data plane's only way to check a key).
 */
#include "controlplane/settings.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_revocation.h"
#include "proto/log.h"

#define MODULE "cp/snapbuild"

/* "auth" with every member filled in: the empty strings of the settings are JSON null. */
static json_t *auth_section(void)
{
    const cph_auth_settings_t *s = cph_settings_auth();
    json_t *auth;

    auth = json_pack("{s:s, s:s?, s:i, s:i, s:s, s:s?}", "issuer", s->issuer, "audience",
                     s->audience[0] != '\0' ? s->audience : NULL, "leeway_s", s->leeway_s, "max_token_bytes", s->max_token_bytes,
                     "header_prefix", s->header_prefix, "api", s->api[0] != '\0' ? s->api : NULL);
    if (auth == NULL)
        cph_fatal(MODULE, "cannot build the auth section");
    return auth;
}

/* Drops the given members from every object of arr (arr is ours). */
static void drop(json_t *arr, const char *const *members)
{
    size_t i;
    json_t *item;

    json_array_foreach(arr, i, item)
    {
        for (size_t k = 0; members[k] != NULL; ++k)
            json_object_del(item, members[k]);
    }
}

/* Drops "rate_limits" from the rules that have none of their own (null: the route's apply). */
static void drop_null_limits(json_t *endpoints)
{
    size_t i;
    json_t *e;

    json_array_foreach(endpoints, i, e)
    {
        if (json_is_null(json_object_get(e, "rate_limits")))
            json_object_del(e, "rate_limits");
    }
}

int cph_snapbuild_access(cph_db_t *db, json_t *body, cph_error_t *err)
{
    static const char *const GROUP_DROP[] = {"id", "created_at", "updated_at", NULL};
    static const char *const ENDPOINT_DROP[] = {"created_at", "updated_at", NULL}; /* the id stays: counters key on it */
    json_t *groups = NULL, *endpoints = NULL, *keys = NULL, *revoked = NULL, *issuers = NULL, *auth;
    int ret = -1;

    if ((groups = cph_store_group_list(db, err)) == NULL || (endpoints = cph_store_endpoint_list(db, err)) == NULL ||
        (keys = cph_store_api_key_snapshot(db, err)) == NULL || (revoked = cph_store_revocation_snapshot(db, err)) == NULL ||
        (issuers = cph_store_issuer_snapshot(db, err)) == NULL)
        goto Exit;
    drop(groups, GROUP_DROP);
    drop(endpoints, ENDPOINT_DROP);
    drop_null_limits(endpoints);
    auth = auth_section();
    if (json_array_size(issuers) != 0) /* left out when none, so a store without issuers builds the body it always did */
        json_object_set(auth, "issuers", issuers);
    json_object_set_new(body, "auth", auth);
    json_object_set(body, "groups", groups);
    json_object_set(body, "endpoints", endpoints);
    json_object_set(body, "api_keys", keys);
    json_object_set(body, "revoked", revoked);
    ret = 0;
Exit:
    json_decref(groups);
    json_decref(endpoints);
    json_decref(keys);
    json_decref(revoked);
    json_decref(issuers);
    return ret;
}
