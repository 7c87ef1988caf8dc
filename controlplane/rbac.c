/*
 * rbac: the admin API's permission table (rbac.h) - who may make which call.
 *
 * Three admin roles: a viewer reads, an editor writes what belongs to the systems in its scope, an owner does
 * everything. One static table says, for every routed (resource, collection|item, method), which of four rules
 * applies: ANY (every admin; the handler itself restricts, as admin_tokens does to one's own tokens), VIEW (reads, and
 * tools that write nothing such as authz/explain), SCOPED (owner, or an editor when every system the write touches is
 * in its scope) or OWNER. A call that no row covers is refused for everyone, and the unit test walks the routed
 * resources (cph_api_resources) so that no route can ship without a row.
 *
 * A SCOPED call by an editor is resolved here, with the database lock held: the stored object (read with the very
 * store operation the handler will use, so the key means exactly the same thing to both) AND the request body both
 * name systems - directly (a code), through a service (a name), or through a route - and every one must be in scope.
 * So an editor can neither change an object of another system, nor move its own object into or out of one. Anything
 * that belongs to no system (a service without one, a user in no system, a superuser) is the owner's. Two writes
 * reach further than their own system and are the owner's too: a service's Vault credentials (a Vault path is not
 * scoped by system: an editor could otherwise send any secret to an upstream it chose) and the aggregate backends of a
 * route (each backend's service must be in scope as well).
 *
 * api.c runs the check before the handler's own write transaction, so an owner's concurrent write between the two
 * could still move the object; cph_rbac_check_locked is the same check for a caller that already holds the lock
 * (inside cph_db_write), which closes that window.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "controlplane/rbac.h"
#include "controlplane/api.h"
#include "controlplane/api_cache.h"
#include "controlplane/ident.h"
#include "controlplane/store.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_role.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"
#include "proto/log.h"

#define MODULE "cp/rbac"

/* One SCOPED call being resolved for an editor. */
typedef struct st_scope_t {
    cph_db_t *db;
    const cph_admin_principal_t *p;
    const char *key;    /* the item, NULL on a collection */
    const json_t *body; /* POST/PUT, else NULL */
    cph_error_t *err;
} scope_t;

typedef int (*resolve_fn)(scope_t *s);

/* ---------------------------------------------------------------- touching systems */

static int owner_only(scope_t *s, const char *path, const char *what)
{
    return cph_error_set(s->err, "forbidden", path, "this needs the owner role: %s", what);
}

/* The system id must be in the editor's scope; the refusal names the system (every admin may read systems). */
static int touch_id(scope_t *s, int64_t id, const char *path)
{
    sqlite3_stmt *st = NULL;
    int ret;

    if (cph_admin_in_scope(s->p, id))
        return 0;
    if (sqlite3_prepare_v2(cph_db_handle(s->db), "SELECT code FROM systems WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(s->db, s->err, "rbac system code");
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        ret = cph_error_set(s->err, "forbidden", path, "system %s is not in your scope", (const char *)sqlite3_column_text(st, 0));
    else
        ret = cph_error_set(s->err, "forbidden", path, "the write touches a system that is not in your scope");
    sqlite3_finalize(st);
    return ret;
}

/* A system code (stored: path ""; from the body: its pointer, and an unknown code is 400 unknown_system there). */
static int touch_code(scope_t *s, const char *code, const char *path)
{
    int64_t id;

    if (code == NULL)
        return cph_error_set(s->err, "invalid", path, "must be a system code");
    if (cph_ident_system_id(s->db, code, path, &id, s->err) != 0)
        return -1;
    return touch_id(s, id, path);
}

/* The system of the service named name: none is the owner's (what: "a route of a service in no system"). */
static int touch_service(scope_t *s, const char *name, const char *path, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc, null = 0;
    int64_t id = 0;

    if (sqlite3_prepare_v2(cph_db_handle(s->db), "SELECT system_id FROM services WHERE name = ?1", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(s->db, s->err, "rbac service system");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        null = sqlite3_column_type(st, 0) == SQLITE_NULL;
        id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return cph_error_set(s->err, "unknown_service", path, "no service with this name exists");
    if (rc != SQLITE_ROW)
        return cph_store_internal(s->db, s->err, "rbac service system");
    return null ? owner_only(s, path, what) : touch_id(s, id, path);
}

/*
 * The body's system member (a code). Absent: nothing (the store keeps the stored one, or refuses the body), unless
 * none_what is set - then absent and null mean "no system", which is the owner's.
 */
static int touch_body_system(scope_t *s, const char *none_what)
{
    json_t *v = json_object_get(s->body, "system");

    if (v == NULL || json_is_null(v))
        return none_what != NULL ? owner_only(s, "/system", none_what)
               : v == NULL       ? 0
                                 : cph_error_set(s->err, "invalid", "/system", "must be a system code");
    return touch_code(s, json_string_value(v), "/system");
}

/* The stored object's system (a code, or null: none_what is the owner's). */
static int touch_stored_system(scope_t *s, const json_t *obj, const char *none_what)
{
    json_t *v = json_object_get(obj, "system");

    if (v == NULL || json_is_null(v))
        return owner_only(s, "", none_what);
    return touch_code(s, json_string_value(v), "");
}

/* The stored object of an item call, read with the handler's own store operation; NULL with err (not_found). */
static json_t *stored(scope_t *s, const cph_store_ops_t *ops)
{
    return ops->get(s->db, s->key, s->err);
}

/* ---------------------------------------------------------------- resolvers */

static json_t *member_or_null(const json_t *obj, const char *name)
{
    json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;

    return v != NULL ? v : json_null();
}

/*
 * Vault credentials in the body are the owner's, unless they are the stored ones and the upstream they go to is
 * unchanged too (same Consul binding, or same static targets): an editor may still edit such a service's other members.
 */
static int service_credentials(scope_t *s, const json_t *old)
{
    json_t *c = json_object_get(s->body, "credentials"), *consul = member_or_null(s->body, "consul");

    if (c == NULL || json_is_null(c))
        return 0;
    if (old != NULL && json_equal(c, member_or_null(old, "credentials")) && json_equal(consul, member_or_null(old, "consul")) &&
        (!json_is_null(consul) || json_equal(member_or_null(s->body, "targets"), member_or_null(old, "targets"))))
        return 0;
    return owner_only(s, "/credentials", "a service's Vault credentials");
}

static int resolve_service(scope_t *s)
{
    static const char NONE[] = "a service in no system";
    json_t *old = NULL;
    int ret = -1;

    if (s->key != NULL && ((old = stored(s, &cph_store_service_ops)) == NULL || touch_stored_system(s, old, NONE) != 0))
        goto Exit;
    if (s->body != NULL && (touch_body_system(s, NONE) != 0 || service_credentials(s, old) != 0))
        goto Exit;
    ret = 0;
Exit:
    json_decref(old);
    return ret;
}

/* The services an aggregate route's backends call (obj: the stored route, path ""; or the body, with pointers). */
static int touch_backends(scope_t *s, const json_t *obj, int is_body)
{
    json_t *backends = json_object_get(json_object_get(obj, "aggregate"), "backends"), *b;
    char path[96];
    size_t i;

    json_array_foreach(backends, i, b)
    {
        const char *name = json_string_value(json_object_get(b, "service"));
        if (name == NULL)
            continue; /* the schema refuses it */
        path[0] = '\0';
        if (is_body)
            snprintf(path, sizeof(path), "/aggregate/backends/%zu/service", i);
        if (touch_service(s, name, path, "an aggregate backend of a service in no system") != 0)
            return -1;
    }
    return 0;
}

static int resolve_route(scope_t *s)
{
    static const char NONE[] = "a route of a service in no system";
    const char *name;
    json_t *old = NULL;
    int ret = -1;

    if (s->key != NULL) {
        if ((old = stored(s, &cph_store_route_ops)) == NULL ||
            touch_service(s, json_string_value(json_object_get(old, "service")), "", NONE) != 0 || touch_backends(s, old, 0) != 0)
            goto Exit;
    }
    if (s->body != NULL) {
        if ((name = json_string_value(json_object_get(s->body, "service"))) != NULL &&
            touch_service(s, name, "/service", NONE) != 0)
            goto Exit;
        if (touch_backends(s, s->body, 1) != 0)
            goto Exit;
    }
    ret = 0;
Exit:
    json_decref(old);
    return ret;
}

static int resolve_endpoint(scope_t *s)
{
    static const char NONE[] = "a rule of a service in no system";
    const char *name;
    json_t *old = NULL;
    int ret = -1;

    if (s->key != NULL && ((old = stored(s, &cph_store_endpoint_ops)) == NULL ||
                           touch_service(s, json_string_value(json_object_get(old, "service")), "", NONE) != 0))
        goto Exit;
    if (s->body != NULL && (name = json_string_value(json_object_get(s->body, "service"))) != NULL &&
        touch_service(s, name, "/service", NONE) != 0)
        goto Exit;
    ret = 0;
Exit:
    json_decref(old);
    return ret;
}

/* Roles, groups, api keys, issuers: the object's own system, stored and in the body. */
static int resolve_system_member(scope_t *s, const cph_store_ops_t *ops)
{
    json_t *old = NULL;
    int ret = -1;

    if (s->key != NULL && ((old = stored(s, ops)) == NULL || touch_stored_system(s, old, "an object in no system") != 0))
        goto Exit;
    if (s->body != NULL && touch_body_system(s, NULL) != 0)
        goto Exit;
    ret = 0;
Exit:
    json_decref(old);
    return ret;
}

static int resolve_role(scope_t *s)
{
    return resolve_system_member(s, &cph_store_role_ops);
}

static int resolve_group(scope_t *s)
{
    return resolve_system_member(s, &cph_store_group_ops);
}

static int resolve_api_key(scope_t *s)
{
    return resolve_system_member(s, &cph_store_api_key_ops);
}

static int resolve_issuer(scope_t *s)
{
    return resolve_system_member(s, &cph_store_issuer_ops);
}

/* A user's systems (stored, path_base ""; or the body's "/systems"): none is the owner's. */
static int touch_user_systems(scope_t *s, const json_t *systems, const char *path_base)
{
    char path[64];
    json_t *v;
    size_t i;

    if (systems != NULL && !json_is_array(systems))
        return cph_error_set(s->err, "invalid", path_base, "must be an array of system codes");
    if (json_array_size(systems) == 0)
        return owner_only(s, path_base, "a user in no system");
    json_array_foreach(systems, i, v)
    {
        snprintf(path, sizeof(path), "%s%s%zu", path_base, path_base[0] != '\0' ? "/" : "", i);
        if (touch_code(s, json_string_value(v), path_base[0] != '\0' ? path : "") != 0)
            return -1;
    }
    return 0;
}

/* The body's role and group references {system, name}: their systems too (the store also wants them in "systems"). */
static int touch_user_refs(scope_t *s, const char *member)
{
    char path[80];
    json_t *v;
    size_t i;

    json_array_foreach(json_object_get(s->body, member), i, v)
    {
        const char *code = json_string_value(json_object_get(v, "system"));
        snprintf(path, sizeof(path), "/%s/%zu/system", member, i);
        if (code != NULL && touch_code(s, code, path) != 0)
            return -1;
    }
    return 0;
}

static int resolve_user(scope_t *s)
{
    json_t *old = NULL;
    int ret = -1;

    if (s->key != NULL) {
        if ((old = stored(s, &cph_store_user_ops)) == NULL)
            goto Exit;
        if (json_is_true(json_object_get(old, "superuser"))) {
            owner_only(s, "", "a superuser");
            goto Exit;
        }
        if (touch_user_systems(s, json_object_get(old, "systems"), "") != 0)
            goto Exit;
    }
    if (s->body != NULL) {
        if (json_is_true(json_object_get(s->body, "superuser"))) {
            owner_only(s, "/superuser", "a superuser");
            goto Exit;
        }
        if (touch_user_systems(s, json_object_get(s->body, "systems"), "/systems") != 0 || touch_user_refs(s, "roles") != 0 ||
            touch_user_refs(s, "groups") != 0)
            goto Exit;
    }
    ret = 0;
Exit:
    json_decref(old);
    return ret;
}

/* PUT /systems/{key}: that system (its code and name are all a body holds). */
static int resolve_system(scope_t *s)
{
    json_t *old = stored(s, &cph_store_system_ops);
    int ret;

    if (old == NULL)
        return -1;
    ret = touch_id(s, json_integer_value(json_object_get(old, "id")), "");
    json_decref(old);
    return ret;
}

/* POST /cache/purge {"route", "prefix"?}: the route's service's system. */
static int resolve_purge(scope_t *s)
{
    const char *route, *prefix;
    sqlite3_stmt *st = NULL;
    int rc, null = 0;
    int64_t id = 0;

    if (s->key == NULL || strcmp(s->key, "purge") != 0)
        return cph_error_set(s->err, "not_found", "", "no such resource");
    if (cph_api_cache_check_purge(s->body, &route, &prefix, s->err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(s->db),
                           "SELECT s.system_id FROM routes r JOIN services s ON s.id = r.service_id WHERE r.name = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return cph_store_internal(s->db, s->err, "rbac route system");
    sqlite3_bind_text(st, 1, route, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        null = sqlite3_column_type(st, 0) == SQLITE_NULL;
        id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return cph_error_set(s->err, "not_found", "/route", "no route has this name");
    if (rc != SQLITE_ROW)
        return cph_store_internal(s->db, s->err, "rbac route system");
    return null ? owner_only(s, "/route", "a route of a service in no system") : touch_id(s, id, "/route");
}

/* ---------------------------------------------------------------- the table */

#define GET CPH_API_GET
#define POST CPH_API_POST
#define PUT CPH_API_PUT
#define DELETE CPH_API_DELETE
#define COLL 0
#define ITEM 1

static const struct st_row_t {
    cph_rbac_rule_info_t info;
    resolve_fn resolve; /* SCOPED rows: the systems an editor's call touches */
} ROWS[] = {
#define CRUD(res, fn)                                                                                                              \
    {{res, COLL, GET, NULL, CPH_RBAC_VIEW}, NULL}, {{res, COLL, POST, NULL, CPH_RBAC_SCOPED}, fn},                                 \
        {{res, ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},                                                                             \
    {                                                                                                                              \
        {res, ITEM, PUT | DELETE, NULL, CPH_RBAC_SCOPED}, fn                                                                       \
    }
    CRUD("services", resolve_service),
    CRUD("routes", resolve_route),
    CRUD("roles", resolve_role),
    CRUD("groups", resolve_group),
    CRUD("users", resolve_user),
    CRUD("endpoints", resolve_endpoint),
    CRUD("api_keys", resolve_api_key),
    CRUD("issuers", resolve_issuer),
#undef CRUD
    {{"systems", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"systems", COLL, POST, NULL, CPH_RBAC_OWNER}, NULL},
    {{"systems", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"systems", ITEM, PUT, NULL, CPH_RBAC_SCOPED}, resolve_system},
    {{"systems", ITEM, DELETE, NULL, CPH_RBAC_OWNER}, NULL},
    {{"dataplanes", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"snapshot", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"signing_keys", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"signing_keys", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"signing_keys", ITEM, POST, NULL, CPH_RBAC_OWNER}, NULL}, /* rotate */
    {{"jwks", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"authz", ITEM, GET | POST, NULL, CPH_RBAC_VIEW}, NULL}, /* GET shadow, POST explain: nothing is written */
    {{"cache", ITEM, POST, NULL, CPH_RBAC_SCOPED}, resolve_purge},
    {{"health", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"health", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"integrations", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"integrations", ITEM, GET, "vault/paths", CPH_RBAC_OWNER}, NULL}, /* a LIST of Vault's secret names */
    {{"integrations", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"admin", ITEM, GET | POST, NULL, CPH_RBAC_ANY}, NULL}, /* login, logout, me */
    {{"admin_accounts", COLL, GET | POST, NULL, CPH_RBAC_OWNER}, NULL},
    {{"admin_accounts", ITEM, GET | PUT | DELETE, NULL, CPH_RBAC_OWNER}, NULL},
    {{"admin_tokens", COLL, GET | POST, NULL, CPH_RBAC_ANY}, NULL},   /* the handler: one's own tokens, role <= one's own */
    {{"admin_tokens", ITEM, GET | DELETE, NULL, CPH_RBAC_ANY}, NULL}, /* the handler: one's own, or any for an owner */
    {{"audit", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"audit", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"snapshots", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
    {{"snapshots", ITEM, GET, NULL, CPH_RBAC_VIEW}, NULL},   /* {v}, {v}/diff */
    {{"snapshots", ITEM, POST, NULL, CPH_RBAC_OWNER}, NULL}, /* {v}/rollback */
    {{"openapi.json", COLL, GET, NULL, CPH_RBAC_VIEW}, NULL},
};

#define NROWS (sizeof(ROWS) / sizeof(ROWS[0]))

const cph_rbac_rule_info_t *cph_rbac_rules(size_t *n)
{
    static cph_rbac_rule_info_t info[NROWS];

    for (size_t i = 0; i < NROWS; ++i)
        info[i] = ROWS[i].info;
    *n = NROWS;
    return info;
}

static const struct st_row_t *find(const char *resource, const char *key, int method)
{
    if (resource == NULL || (method != GET && method != POST && method != PUT && method != DELETE))
        return NULL;
    for (size_t i = 0; i < NROWS; ++i) {
        const cph_rbac_rule_info_t *r = &ROWS[i].info;
        if (strcmp(r->resource, resource) != 0 || r->item != (key != NULL) || (r->methods & method) == 0)
            continue;
        if (r->key == NULL || (key != NULL && strcmp(r->key, key) == 0))
            return &ROWS[i];
    }
    return NULL;
}

cph_rbac_rule_t cph_rbac_rule(const char *resource, const char *key, int method)
{
    const struct st_row_t *row = find(resource, key, method);

    return row != NULL ? row->info.rule : CPH_RBAC_NONE;
}

/* ---------------------------------------------------------------- the check */

static int scoped(cph_db_t *db, const cph_admin_principal_t *p, const struct st_row_t *row, const char *key, const json_t *body,
                  int take_lock, cph_error_t *err)
{
    scope_t s = {db, p, key, body, err};
    int ret;

    if (p->role == CPH_ADMIN_OWNER)
        return 0;
    if (p->role != CPH_ADMIN_EDITOR)
        return cph_error_set(err, "forbidden", "", "this needs the editor role (for the systems it touches) or the owner role");
    if (row->resolve == NULL) /* a SCOPED row without a resolver: nothing to scope by */
        return cph_error_set(err, "forbidden", "", "this needs the owner role");
    if (take_lock)
        cph_db_lock(db);
    ret = row->resolve(&s);
    if (take_lock)
        cph_db_unlock(db);
    return ret;
}

static int check(cph_db_t *db, const cph_admin_principal_t *p, const char *resource, const char *key, int method,
                 const json_t *body, int take_lock, cph_error_t *err)
{
    const struct st_row_t *row;

    memset(err, 0, sizeof(*err));
    if (p == NULL || (p->role != CPH_ADMIN_VIEWER && p->role != CPH_ADMIN_EDITOR && p->role != CPH_ADMIN_OWNER))
        return cph_error_set(err, "forbidden", "", "an admin role is required");
    if ((row = find(resource, key, method)) == NULL) {
        cph_log_warn(MODULE, "no permission rule for %s %s", resource != NULL ? resource : "(null)",
                     key != NULL ? "item" : "collection");
        return cph_error_set(err, "forbidden", "", "no permission rule covers this call");
    }
    switch (row->info.rule) {
    case CPH_RBAC_ANY:
    case CPH_RBAC_VIEW:
        return 0;
    case CPH_RBAC_OWNER:
        return p->role == CPH_ADMIN_OWNER ? 0 : cph_error_set(err, "forbidden", "", "this needs the owner role");
    case CPH_RBAC_SCOPED:
        return scoped(db, p, row, key, method == GET ? NULL : body, take_lock, err);
    case CPH_RBAC_NONE:
        break;
    }
    return cph_error_set(err, "forbidden", "", "no permission rule covers this call");
}

int cph_rbac_check(cph_db_t *db, const cph_admin_principal_t *p, const char *resource, const char *key, int method,
                   const json_t *body, cph_error_t *err)
{
    return check(db, p, resource, key, method, body, 1, err);
}

int cph_rbac_check_locked(cph_db_t *db, const cph_admin_principal_t *p, const char *resource, const char *key, int method,
                          const json_t *body, cph_error_t *err)
{
    return check(db, p, resource, key, method, body, 0, err);
}
