/*
 * api_crud: the collection and item endpoints of every stored entity (/api/v1/services, /api/v1/routes, ...).
 *
 * One handler serves them all through the entity's cph_store_ops_t, so every resource answers, validates, audits
 * and waits for the data planes in exactly the same way. A POST or PUT body is normalised (validated against the
 * schema, defaults filled, a password hashed) before the write lock is taken, so slow work never holds up other
 * writers; a PUT still looks the object up first, inside the write, so that an unknown id is a 404 whatever the body
 * says. The write itself (cph_db_write) then validates the whole new snapshot, so an object the data plane would
 * refuse never lands in the database.
 *
 * Two options serve the api keys, and only them (crud_opts_t): a member of the normalised object that the creation
 * answer shows once (the key's secret - added to the answer after the audit row holds the stored representation, so
 * it is never stored), and a PUT that merges the body over the stored object (top-level members; absent members keep
 * their values), so that {"revoked": true} revokes a key. A merging PUT normalises inside the write, as it needs the
 * stored object.
 *
 * api.c checks the caller's permission (rbac.c) before the handler runs; a non-owner's write checks it again inside
 * the write transaction, so an object an owner moved out of the caller's scope in between is never written.
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/api.h"
#include "controlplane/rbac.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_role.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"

typedef struct st_crud_opts_t {
    const char *show_once; /* member of the normalised object added to the creation answer only, or NULL */
    int merge_put;         /* a PUT body is merged over the stored object */
} crud_opts_t;

typedef struct st_write_t {
    const cph_store_ops_t *ops;
    const crud_opts_t *opts;
    const cph_api_req_t *req; /* for the permission re-check: principal, method; resource is the route's name */
    const char *resource;
    const char *key;
    const json_t *in;     /* the request body (PUT) */
    json_t *obj;          /* normalised object (before the write; a merging PUT: inside it) */
    cph_error_t norm_err; /* why obj is NULL (PUT), answered once the object is known to exist */
    json_t *result;       /* the stored object as the API shows it */
} write_t;

/* Reads the stored object back by id (a digit-only name could match another id) and records the change. */
static int finish(cph_db_t *db, write_t *w, const char *action, int64_t id, cph_db_change_t *change, cph_error_t *err)
{
    char idbuf[24];

    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    if ((w->result = w->ops->get(db, idbuf, err)) == NULL)
        return -1;
    change->action = action;
    change->entity_type = w->ops->entity;
    change->entity_id = id;
    change->entity_name = json_string_value(json_object_get(w->obj, "name"));
    change->after = json_incref(w->result);
    return 0;
}

/* The permission check again, under the write lock: what api.c checked may have changed since (an owner's write). */
static int recheck(cph_db_t *db, const write_t *w, cph_error_t *err)
{
    const cph_admin_principal_t *p = w->req->principal;

    if (p == NULL || p->role == CPH_ADMIN_OWNER)
        return 0;
    return cph_rbac_check_locked(db, p, w->resource, w->key, w->req->method, w->in, err);
}

static int on_create(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    int64_t id;

    if (recheck(db, w, err) != 0 || w->ops->insert(db, w->obj, &id, err) != 0)
        return -1;
    return finish(db, w, "create", id, change, err);
}

static int on_replace(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    int64_t id;

    if (recheck(db, w, err) != 0 || (change->before = w->ops->get(db, w->key, err)) == NULL)
        return -1;
    id = json_integer_value(json_object_get(change->before, "id"));
    if (w->opts->merge_put) {
        json_t *merged = json_deep_copy(change->before);
        json_object_update(merged, (json_t *)w->in);
        w->obj = w->ops->normalize(merged, &w->norm_err);
        json_decref(merged);
    }
    if (w->obj == NULL) {
        *err = w->norm_err;
        return -1;
    }
    if (w->ops->update(db, id, w->obj, err) != 0)
        return -1;
    return finish(db, w, "update", id, change, err);
}

static int on_delete(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;

    if (recheck(db, w, err) != 0 || (change->before = w->ops->get(db, w->key, err)) == NULL)
        return -1;
    change->action = "delete";
    change->entity_type = w->ops->entity;
    change->entity_id = json_integer_value(json_object_get(change->before, "id"));
    return w->ops->remove(db, change->entity_id, err);
}

static void do_write(cph_api_req_t *req, cph_db_write_cb cb, write_t *w, unsigned status)
{
    cph_error_t err;
    uint64_t version;

    if (cph_db_write(req->db, req->actor, cb, w, &version, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    if (cb == on_create && w->opts->show_once != NULL && w->result != NULL) /* the audit row is written: shown, not kept */
        json_object_set(w->result, w->opts->show_once, json_object_get(w->obj, w->opts->show_once));
    cph_api_written(req, status, w->result != NULL ? json_pack("{s:O}", w->ops->entity, w->result) : json_object(), version);
}

static void do_read(cph_api_req_t *req, const cph_store_ops_t *ops)
{
    cph_error_t err;
    json_t *out;

    memset(&err, 0, sizeof(err));
    cph_db_lock(req->db);
    out = req->key != NULL ? ops->get(req->db, req->key, &err) : ops->list(req->db, &err);
    cph_db_unlock(req->db);
    if (out == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, req->key != NULL ? out : json_pack("{s:o}", "data", out));
}

/* Serves a collection (key NULL: GET list, POST create) or an item (GET, PUT replace, DELETE) of one entity. */
static void crud(cph_api_req_t *req, const char *resource, const cph_store_ops_t *ops, const crud_opts_t *opts)
{
    write_t w = {.ops = ops, .opts = opts, .req = req, .resource = resource, .key = req->key, .in = req->body};
    cph_error_t err;

    switch (req->method) {
    case CPH_API_GET:
        do_read(req, ops);
        return;
    case CPH_API_POST:
        if ((w.obj = ops->normalize(req->body, &err)) == NULL)
            cph_api_fail(req, &err);
        else
            do_write(req, on_create, &w, 201);
        break;
    case CPH_API_PUT:
        if (!opts->merge_put)
            w.obj = ops->normalize(req->body, &w.norm_err);
        do_write(req, on_replace, &w, 200);
        break;
    case CPH_API_DELETE:
        do_write(req, on_delete, &w, 200);
        break;
    }
    json_decref(w.obj);
    json_decref(w.result);
}

static const crud_opts_t PLAIN = {NULL, 0};

void cph_api_services(cph_api_req_t *req)
{
    crud(req, "services", &cph_store_service_ops, &PLAIN);
}

void cph_api_routes(cph_api_req_t *req)
{
    crud(req, "routes", &cph_store_route_ops, &PLAIN);
}

void cph_api_systems(cph_api_req_t *req)
{
    crud(req, "systems", &cph_store_system_ops, &PLAIN);
}

void cph_api_roles(cph_api_req_t *req)
{
    crud(req, "roles", &cph_store_role_ops, &PLAIN);
}

void cph_api_groups(cph_api_req_t *req)
{
    crud(req, "groups", &cph_store_group_ops, &PLAIN);
}

void cph_api_users(cph_api_req_t *req)
{
    crud(req, "users", &cph_store_user_ops, &PLAIN);
}

void cph_api_endpoints(cph_api_req_t *req)
{
    crud(req, "endpoints", &cph_store_endpoint_ops, &PLAIN);
}

void cph_api_issuers(cph_api_req_t *req)
{
    crud(req, "issuers", &cph_store_issuer_ops, &PLAIN);
}

void cph_api_api_keys(cph_api_req_t *req)
{
    static const crud_opts_t API_KEY = {"key", 1};

    crud(req, "api_keys", &cph_store_api_key_ops, &API_KEY);
}
