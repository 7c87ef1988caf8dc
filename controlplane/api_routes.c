/*
 * api_routes: /api/v1/routes and /api/v1/routes/{id-or-name}.
 *
 * A POST body is normalised (validated against the schema, defaults filled) before the write lock is taken; a PUT
 * looks the route up first, inside the write, so that an unknown id is a 404 whatever the body says. The write
 * itself (cph_db_write) then validates the whole new snapshot, so a route that the data plane would refuse never
 * lands in the database.
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/api.h"
#include "controlplane/store_route.h"

#define MODULE "cp/api/routes"

typedef struct st_write_t {
    const char *key;
    const json_t *in; /* the request body (PUT) */
    json_t *route;    /* normalised object (POST: before the write; PUT: inside it) */
    json_t *result;   /* the stored object as the API shows it */
} write_t;

static int on_create(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    int64_t id;
    char idbuf[24];

    if (cph_store_route_insert(db, w->route, &id, err) != 0)
        return -1;
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id); /* by id: a digit-only name could match another id */
    if ((w->result = cph_store_route_get(db, idbuf, err)) == NULL)
        return -1;
    change->action = "create";
    change->entity_type = "route";
    change->entity_id = id;
    change->entity_name = json_string_value(json_object_get(w->route, "name"));
    change->after = json_incref(w->result);
    return 0;
}

static int on_replace(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    json_t *before;
    int64_t id;
    char idbuf[24];

    if ((before = cph_store_route_get(db, w->key, err)) == NULL)
        return -1;
    change->before = before;
    id = json_integer_value(json_object_get(before, "id"));
    if ((w->route = cph_store_route_normalize(w->in, err)) == NULL || cph_store_route_update(db, id, w->route, err) != 0)
        return -1;
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    if ((w->result = cph_store_route_get(db, idbuf, err)) == NULL)
        return -1;
    change->action = "update";
    change->entity_type = "route";
    change->entity_id = id;
    change->entity_name = json_string_value(json_object_get(w->route, "name"));
    change->after = json_incref(w->result);
    return 0;
}

static int on_delete(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    write_t *w = p;
    json_t *before;

    if ((before = cph_store_route_get(db, w->key, err)) == NULL)
        return -1;
    change->before = before;
    change->action = "delete";
    change->entity_type = "route";
    change->entity_id = json_integer_value(json_object_get(before, "id"));
    return cph_store_route_delete(db, change->entity_id, err);
}

static void do_write(cph_api_req_t *req, cph_db_write_cb cb, write_t *w, unsigned status)
{
    cph_error_t err;
    uint64_t version;

    if (cph_db_write(req->db, req->actor, cb, w, &version, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    cph_api_written(req, status, w->result != NULL ? json_pack("{s:O}", "route", w->result) : json_object(), version);
}

static void read_one(cph_api_req_t *req)
{
    cph_error_t err;
    json_t *route;

    cph_db_lock(req->db);
    route = cph_store_route_get(req->db, req->key, &err);
    cph_db_unlock(req->db);
    if (route == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, route);
}

static void read_all(cph_api_req_t *req)
{
    cph_error_t err;
    json_t *list;

    memset(&err, 0, sizeof(err));
    cph_db_lock(req->db);
    list = cph_store_route_list(req->db, &err);
    cph_db_unlock(req->db);
    if (list == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, json_pack("{s:o}", "data", list));
}

void cph_api_routes(cph_api_req_t *req)
{
    write_t w = {req->key, req->body, NULL, NULL};
    cph_error_t err;

    switch (req->method) {
    case CPH_API_GET:
        if (req->key == NULL)
            read_all(req);
        else
            read_one(req);
        return;
    case CPH_API_POST:
        if ((w.route = cph_store_route_normalize(req->body, &err)) == NULL)
            cph_api_fail(req, &err);
        else
            do_write(req, on_create, &w, 201);
        break;
    case CPH_API_PUT:
        do_write(req, on_replace, &w, 200);
        break;
    case CPH_API_DELETE:
        do_write(req, on_delete, &w, 200);
        break;
    }
    json_decref(w.route);
    json_decref(w.result);
}
