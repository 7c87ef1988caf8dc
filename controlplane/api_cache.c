/*
 * api_cache: the admin side of the response cache - POST /api/v1/cache/purge {"route", "prefix"?}.
 *
 * A purge is not a config write: the snapshot does not change, so no version is bumped and nothing is published.
 * It is still an admin action someone must be able to trace, so it gets an audit row of its own (action "purge",
 * entity "route", the current config version), written in its own short transaction together with the lookup
 * of the route, before anything is sent: a purge that cannot be audited is not sent. The message then goes to every
 * connected data plane through the socket server (cph_dpserver_purge), and the answer says to how many. The message
 * carries "at", the control plane's wall clock (ms since the epoch) when the purge was asked for: the socket server
 * keeps the purges of the last 24 hours and replays them to a data plane that connects later, which then drops only
 * the entries it stored before that time.
 *
 * The body is checked as strictly as a snapshot member: unknown members, wrong types (a real number included) and a
 * prefix that is not a canonical path are 400 with the member's JSON pointer. The prefix must be canonical because the
 * data planes compare it byte-wise with the canonical upstream path they store entries under: anything else could
 * never match and would purge nothing while looking as if it worked.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/api_cache.h"
#include "controlplane/audit.h"
#include "controlplane/db.h"
#include "controlplane/dpserver.h"
#include "proto/log.h"

#define MODULE "cp/api/cache"
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

static const char *const PURGE_MEMBERS[] = {"route", "prefix", NULL};

/* ---------------------------------------------------------------- the body */

static int wrong_type(const json_t *v, const char *path, const char *want, cph_error_t *err)
{
    if (json_is_real(v))
        return cph_error_set(err, "invalid", path, "must be %s; real numbers are not allowed", want);
    return cph_error_set(err, "invalid", path, "must be %s", want);
}

static int check_members(const json_t *body, cph_error_t *err)
{
    const char *key;
    json_t *v;
    char path[256];

    json_object_foreach((json_t *)body, key, v)
    {
        size_t i = 0;
        while (PURGE_MEMBERS[i] != NULL && strcmp(PURGE_MEMBERS[i], key) != 0)
            ++i;
        if (PURGE_MEMBERS[i] == NULL) {
            path[0] = '\0';
            cph_jsonptr_append(path, sizeof(path), key);
            return cph_error_set(err, "unknown_field", path, "unknown member");
        }
    }
    return 0;
}

/* An upstream path prefix: 1-CPH_PURGE_PREFIX_MAX bytes, '/' first, and canonical. */
static int valid_prefix(const char *s, size_t len)
{
    char *canon;
    size_t clen;
    int ok;

    if (len == 0 || len > CPH_PURGE_PREFIX_MAX || s[0] != '/' || memchr(s, '\0', len) != NULL)
        return 0;
    if ((canon = malloc(3 * len + 1)) == NULL)
        cph_fatal(MODULE, "out of memory");
    ok = cph_path_canonicalize(s, len, canon, &clen) == 0 && clen == len && memcmp(canon, s, len) == 0;
    free(canon);
    return ok;
}

int cph_api_cache_check_purge(const json_t *body, const char **route, const char **prefix, cph_error_t *err)
{
    const json_t *r, *p;

    if (!json_is_object(body))
        return cph_error_set(err, "invalid", "", "the body must be a JSON object");
    if (check_members(body, err) != 0)
        return -1;
    if ((r = json_object_get(body, "route")) == NULL)
        return cph_error_set(err, "missing_field", "/route", "\"route\" is required");
    if (!json_is_string(r))
        return wrong_type(r, "/route", "a route name (a string)", err);
    if (json_string_length(r) == 0 || json_string_length(r) > CPH_PURGE_ROUTE_MAX ||
        strspn(json_string_value(r), NAME_CHARS) != json_string_length(r))
        return cph_error_set(err, "invalid", "/route", "must be a route name: 1 to %d bytes of [A-Za-z0-9._-]",
                             CPH_PURGE_ROUTE_MAX);
    p = json_object_get(body, "prefix");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_string(p))
            return wrong_type(p, "/prefix", "a path prefix (a string) or null", err);
        if (!valid_prefix(json_string_value(p), json_string_length(p)))
            return cph_error_set(err, "invalid", "/prefix",
                                 "must be a canonical upstream path prefix: 1 to %d bytes starting with '/' (no dot segments, "
                                 "no \"//\", no query, no needless escapes)",
                                 CPH_PURGE_PREFIX_MAX);
    }
    *route = json_string_value(r);
    *prefix = p != NULL && !json_is_null(p) ? json_string_value(p) : NULL;
    return 0;
}

/* ---------------------------------------------------------------- the audit row */

/* The id of the route named name (lock held): 1 found, 0 none, -1 error. */
static int route_id(cph_db_t *db, const char *name, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc, ret = -1;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT id FROM routes WHERE name = ?1", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Looks the route up and records the purge, in one transaction of its own. 0, or -1 with err (not_found, internal). */
static int audit_purge(cph_db_t *db, const char *actor, const char *route, const char *prefix, cph_error_t *err)
{
    cph_db_change_t change = {.action = "purge", .entity_type = "route"};
    uint64_t version = 0;
    char epoch[33];
    int found, ret = -1;

    cph_db_lock(db);
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) != 0)
        goto Exit;
    if ((found = route_id(db, route, &change.entity_id)) < 0 || cph_db_meta(db, epoch, &version) != 0) {
        cph_error_set(err, "internal", "", "internal database error");
        goto Rollback;
    }
    if (found == 0) {
        cph_error_set(err, "not_found", "/route", "no route has this name");
        goto Rollback;
    }
    if ((change.after = json_pack("{s:s, s:s?}", "route", route, "prefix", prefix)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cph_audit_record(db, actor, &change, version, err) != 0 || cph_db_exec(db, "COMMIT", err) != 0)
        goto Rollback;
    ret = 0;
    goto Exit;
Rollback:
    if (sqlite3_get_autocommit(cph_db_handle(db)) == 0)
        sqlite3_exec(cph_db_handle(db), "ROLLBACK", NULL, NULL, NULL);
Exit:
    cph_db_unlock(db);
    json_decref(change.after);
    return ret;
}

/* ---------------------------------------------------------------- the resource */

/* The wall clock in ms since the epoch: the purge's "at". */
static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void purge(cph_api_req_t *req)
{
    const char *route = NULL, *prefix = NULL;
    uint64_t at = wall_ms();
    cph_error_t err;
    size_t sent;

    memset(&err, 0, sizeof(err));
    if (cph_api_cache_check_purge(req->body, &route, &prefix, &err) != 0 ||
        audit_purge(req->db, req->actor, route, prefix, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    sent = req->dps != NULL ? cph_dpserver_purge(req->dps, route, prefix, at) : 0;
    cph_log_info(MODULE, "purge of route %s%s%s sent to %zu data plane(s)", route, prefix != NULL ? " under " : "",
                 prefix != NULL ? prefix : "", sent);
    cph_api_reply(req, 202, json_pack("{s:I}", "purged_on", (json_int_t)sent));
}

void cph_api_cache(cph_api_req_t *req)
{
    if (req->key == NULL || strcmp(req->key, "purge") != 0)
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
    else
        purge(req);
}
