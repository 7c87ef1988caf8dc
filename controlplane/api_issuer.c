/*
 * api_issuer: the admin endpoints of the external issuers, in the shape of every other entity (api_crud.c): the body
 * is normalised before the write lock is taken, the write (cph_db_write) validates the whole new snapshot and audits
 * the change, and ?wait=applied waits for the data planes. It is its own small handler because api_crud.c's generic
 * one is private to that file; it drives the same cph_store_ops_t.
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/api_issuer.h"
#include "controlplane/store_issuer.h"

typedef struct st_write_t {
    const char *key;
    json_t *obj;          /* the normalised request (POST, PUT) */
    cph_error_t norm_err; /* why obj is NULL (PUT), told once the issuer is known to exist */
    json_t *result;       /* the stored issuer as the API shows it */
} write_t;

static int finish(cph_db_t *db, write_t *w, const char *action, int64_t id, cph_db_change_t *change, cph_error_t *err)
{
    char idbuf[24];

    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    if ((w->result = cph_store_issuer_get(db, idbuf, err)) == NULL)
        return -1;
    change->action = action;
    change->entity_type = "issuer";
    change->entity_id = id;
    change->entity_name = NULL; /* the snapshot holds an issuer only once it has keys: no path to translate */
    change->after = json_incref(w->result);
    return 0;
}

static int on_create(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    int64_t id;

    if (cph_store_issuer_insert(db, w->obj, &id, err) != 0)
        return -1;
    return finish(db, w, "create", id, change, err);
}

static int on_replace(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    int64_t id;

    if ((change->before = cph_store_issuer_get(db, w->key, err)) == NULL)
        return -1;
    if (w->obj == NULL) {
        *err = w->norm_err;
        return -1;
    }
    id = json_integer_value(json_object_get(change->before, "id"));
    if (cph_store_issuer_update(db, id, w->obj, err) != 0)
        return -1;
    return finish(db, w, "update", id, change, err);
}

static int on_delete(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;

    if ((change->before = cph_store_issuer_get(db, w->key, err)) == NULL)
        return -1;
    change->action = "delete";
    change->entity_type = "issuer";
    change->entity_id = json_integer_value(json_object_get(change->before, "id"));
    return cph_store_issuer_delete(db, change->entity_id, err);
}

static void do_write(cph_api_req_t *req, cph_db_write_cb cb, write_t *w, unsigned status)
{
    cph_error_t err;
    uint64_t version;

    memset(&err, 0, sizeof(err));
    if (cph_db_write(req->db, req->actor, cb, w, &version, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    cph_api_written(req, status, w->result != NULL ? json_pack("{s:O}", "issuer", w->result) : json_object(), version);
}

static void do_read(cph_api_req_t *req)
{
    cph_error_t err;
    json_t *out;

    memset(&err, 0, sizeof(err));
    cph_db_lock(req->db);
    out = req->key != NULL ? cph_store_issuer_get(req->db, req->key, &err) : cph_store_issuer_list(req->db, &err);
    cph_db_unlock(req->db);
    if (out == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, req->key != NULL ? out : json_pack("{s:o}", "data", out));
}

void cph_api_issuers(cph_api_req_t *req)
{
    write_t w = {.key = req->key};
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    switch (req->method) {
    case CPH_API_GET:
        do_read(req);
        return;
    case CPH_API_POST:
        if ((w.obj = cph_store_issuer_normalize(req->body, &err)) == NULL)
            cph_api_fail(req, &err);
        else
            do_write(req, on_create, &w, 201);
        break;
    case CPH_API_PUT:
        w.obj = cph_store_issuer_normalize(req->body, &w.norm_err);
        do_write(req, on_replace, &w, 200);
        break;
    case CPH_API_DELETE:
        do_write(req, on_delete, &w, 200);
        break;
    }
    json_decref(w.obj);
    json_decref(w.result);
}
