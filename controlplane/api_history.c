/*
 * api_history: the audit log (/api/v1/audit) and the snapshot history (/api/v1/snapshots): list, one version, the diff
 * of any two, and the rollback.
 *
 * Both lists are newest first and paged by a cursor ("before": the id or version to continue below, "next" in the
 * answer) rather than by an offset, so a page stays right while writes keep arriving. Every filter of the audit log
 * is a bound parameter and checked before it is bound (an integer is 1..18 digits, a time is made of the characters
 * of an RFC 3339 time): a bad value is a 400, never part of the SQL text.
 *
 * Bodies are only ever shown redacted (cph_snapbuild_redact: the injected credential header values are secrets), and
 * the diffs are over redacted bodies too. A rollback (history.c) is one write: its answer is the new version's, with
 * the version it went back to, the new hash and whether it equals the old version's (it does when no principal -
 * user, api key, revocation, signing key - changed since).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "controlplane/api.h"
#include "controlplane/history.h"
#include "controlplane/snapbuild.h"

#define MODULE "cp/api/history"
#define LIMIT_MAX 500
#define FILTER_MAX 256
#define SQL_MAX 1024

/* Answers 400 invalid at /<param>; returns -1. */
static int bad(cph_api_req_t *req, const char *param, const char *msg)
{
    char path[64];

    snprintf(path, sizeof(path), "/%s", param);
    cph_api_error(req, 400, "invalid", path, msg);
    return -1;
}

/* An integer query parameter within [min, max] into *out (dflt when absent). Answers 400 and returns -1 when bad. */
static int query_int(cph_api_req_t *req, const char *name, int64_t min, int64_t max, int64_t dflt, int64_t *out)
{
    const char *v = cph_api_query(req, name);
    char msg[128];

    *out = dflt;
    if (v == NULL || cph_history_parse_int(v, min, max, out) == 0)
        return 0;
    snprintf(msg, sizeof(msg), "%s must be an integer from %" PRId64 " to %" PRId64, name, min, max);
    return bad(req, name, msg);
}

static json_t *column_json(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_loads((const char *)sqlite3_column_text(st, col), JSON_DECODE_ANY, NULL); /* the columns are json_valid */
}

static json_t *column_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);

    return s != NULL ? json_string(s) : json_null();
}

static void internal(cph_api_req_t *req)
{
    cph_api_error(req, 500, "internal", NULL, "internal error");
}

/* ---------------------------------------------------------------- audit */

#define AUDIT_SELECT "SELECT id, at, actor, action, entity_type, entity_id, version, before, after FROM audit "

static json_t *audit_row(sqlite3_stmt *st)
{
    json_t *before = column_json(st, 7), *after = column_json(st, 8), *o;
    int truncated = 0;

    if (before == NULL)
        before = json_null();
    if (after == NULL)
        after = json_null();
    o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0), "at", column_text(st, 1),
                  "actor", column_text(st, 2), "action", column_text(st, 3), "entity_type", column_text(st, 4), "entity_id",
                  column_text(st, 5), "version", (json_int_t)sqlite3_column_int64(st, 6));
    json_object_set_new(o, "changes",
                        cph_history_diff(json_is_null(before) ? NULL : before, json_is_null(after) ? NULL : after, &truncated));
    if (truncated)
        json_object_set_new(o, "changes_truncated", json_true());
    json_object_set_new(o, "before", before);
    json_object_set_new(o, "after", after);
    return o;
}

/* A time filter: the characters of an RFC 3339 UTC time ("2026-01-02", "2026-01-02T03:04:05.678Z"), compared as text. */
static int time_ok(const char *s)
{
    size_t len = strlen(s);

    if (len < 4 || len > 30 || strspn(s, "0123456789-:T.Z") != len)
        return 0;
    return strspn(s, "0123456789") == 4 && (s[4] == '\0' || s[4] == '-');
}

typedef struct st_audit_query_t {
    char sql[SQL_MAX];
    const char *text[8];
    int64_t num[8];
    int kind[8]; /* 1 text, 2 integer */
    int n;
} audit_query_t;

static void add_filter(audit_query_t *q, const char *clause, const char *text, int64_t num)
{
    size_t len = strlen(q->sql);

    snprintf(q->sql + len, sizeof(q->sql) - len, " AND %s", clause);
    q->text[q->n] = text;
    q->num[q->n] = num;
    q->kind[q->n] = text != NULL ? 1 : 2;
    q->n++;
}

/* The WHERE clause of the query's filters; answers 400 and returns -1 on a bad one. */
static int audit_filters(cph_api_req_t *req, audit_query_t *q)
{
    static const char *const TEXT[][2] = {
        {"actor", "actor = ?"}, {"action", "action = ?"}, {"entity_type", "entity_type = ?"}, {"entity_id", "entity_id = ?"}};
    static const char *const TIME[][2] = {{"since", "at >= ?"}, {"until", "at < ?"}};
    const char *v;
    int64_t num;

    snprintf(q->sql, sizeof(q->sql), AUDIT_SELECT "WHERE 1");
    for (size_t i = 0; i < sizeof(TEXT) / sizeof(TEXT[0]); ++i) {
        if ((v = cph_api_query(req, TEXT[i][0])) == NULL)
            continue;
        if (v[0] == '\0' || strlen(v) > FILTER_MAX)
            return bad(req, TEXT[i][0], "must be 1 to 256 characters");
        add_filter(q, TEXT[i][1], v, 0);
    }
    for (size_t i = 0; i < sizeof(TIME) / sizeof(TIME[0]); ++i) {
        if ((v = cph_api_query(req, TIME[i][0])) == NULL)
            continue;
        if (!time_ok(v))
            return bad(req, TIME[i][0], "must be an RFC 3339 UTC time such as 2026-01-02T03:04:05Z");
        add_filter(q, TIME[i][1], v, 0);
    }
    if (query_int(req, "version", 0, INT64_MAX, -1, &num) != 0)
        return -1;
    if (num >= 0)
        add_filter(q, "version = ?", NULL, num);
    if (query_int(req, "before", 1, INT64_MAX, -1, &num) != 0)
        return -1;
    if (num >= 0)
        add_filter(q, "id < ?", NULL, num);
    return 0;
}

static void audit_list(cph_api_req_t *req)
{
    audit_query_t q = {.n = 0};
    sqlite3_stmt *st = NULL;
    json_t *items = json_array(), *next = json_null();
    int64_t limit;
    size_t len;
    int rc;

    if (audit_filters(req, &q) != 0 || query_int(req, "limit", 1, LIMIT_MAX, 100, &limit) != 0)
        goto Error;
    len = strlen(q.sql);
    snprintf(q.sql + len, sizeof(q.sql) - len, " ORDER BY id DESC LIMIT ?");
    cph_db_lock(req->db);
    if (sqlite3_prepare_v2(cph_db_handle(req->db), q.sql, -1, &st, NULL) != SQLITE_OK) {
        cph_db_unlock(req->db);
        internal(req);
        goto Error;
    }
    for (int i = 0; i < q.n; ++i) {
        if (q.kind[i] == 1)
            sqlite3_bind_text(st, i + 1, q.text[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, i + 1, q.num[i]);
    }
    sqlite3_bind_int64(st, q.n + 1, limit + 1); /* one more tells whether there is a next page */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int64_t)json_array_size(items) == limit) {
            next = json_integer(json_integer_value(json_object_get(json_array_get(items, (size_t)limit - 1), "id")));
            break;
        }
        json_array_append_new(items, audit_row(st));
    }
    sqlite3_finalize(st);
    cph_db_unlock(req->db);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        internal(req);
        goto Error;
    }
    cph_api_reply(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
    return;
Error:
    json_decref(items);
    json_decref(next);
}

static void audit_one(cph_api_req_t *req)
{
    sqlite3_stmt *st = NULL;
    json_t *row = NULL;
    int64_t id;
    int rc;

    if (cph_history_parse_int(req->key, 1, INT64_MAX, &id) != 0) {
        cph_api_error(req, 400, "invalid", NULL, "an audit entry is named by its id, a positive integer");
        return;
    }
    cph_db_lock(req->db);
    if (sqlite3_prepare_v2(cph_db_handle(req->db), AUDIT_SELECT "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK) {
        cph_db_unlock(req->db);
        internal(req);
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        row = audit_row(st);
    sqlite3_finalize(st);
    cph_db_unlock(req->db);
    if (row != NULL)
        cph_api_reply(req, 200, row);
    else if (rc == SQLITE_DONE)
        cph_api_error(req, 404, "not_found", NULL, "no such audit entry");
    else
        internal(req);
}

void cph_api_audit(cph_api_req_t *req)
{
    if (req->key != NULL)
        audit_one(req);
    else
        audit_list(req);
}

/* ---------------------------------------------------------------- snapshots */

#define SNAPSHOT_SELECT "SELECT version, hash, author, created_at, state IS NOT NULL FROM snapshots "

/* "update route api", "rollback to version 3", "3 changes" - from the version's audit rows (admin sessions aside). */
static json_t *summary(cph_db_t *db, int64_t version)
{
    sqlite3_stmt *st = NULL;
    char text[200] = "";
    int64_t n = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT count(*), action, entity_type, coalesce(json_extract(after, '$.name'), json_extract(before, "
                           "'$.name'), json_extract(after, '$.code'), json_extract(before, '$.code'), entity_id) FROM audit "
                           "WHERE version = ?1 AND entity_type NOT LIKE 'admin\\_%' ESCAPE '\\'",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, version);
        if (sqlite3_step(st) == SQLITE_ROW && (n = sqlite3_column_int64(st, 0)) == 1) {
            const char *action = (const char *)sqlite3_column_text(st, 1), *type = (const char *)sqlite3_column_text(st, 2);
            const char *name = (const char *)sqlite3_column_text(st, 3);
            if (strcmp(action, "rollback") == 0 && strcmp(type, "snapshot") == 0 && name != NULL)
                snprintf(text, sizeof(text), "rollback to version %.20s", name);
            else
                snprintf(text, sizeof(text), "%.32s %.32s%s%.120s", action, type, name != NULL ? " " : "",
                         name != NULL ? name : "");
        } else if (n > 1) {
            snprintf(text, sizeof(text), "%" PRId64 " changes", n);
        }
    }
    sqlite3_finalize(st);
    return json_string(text);
}

static json_t *snapshot_row(cph_db_t *db, sqlite3_stmt *st)
{
    int64_t version = sqlite3_column_int64(st, 0);

    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:b}", "version", (json_int_t)version, "hash", column_text(st, 1), "author",
                     column_text(st, 2), "created_at", column_text(st, 3), "summary", summary(db, version), "restorable",
                     sqlite3_column_int(st, 4));
}

static void snapshot_list(cph_api_req_t *req)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array(), *next = json_null();
    int64_t limit, before;
    int rc;

    if (query_int(req, "limit", 1, LIMIT_MAX, 50, &limit) != 0 || query_int(req, "before", 1, INT64_MAX, INT64_MAX, &before) != 0) {
        json_decref(items);
        return;
    }
    cph_db_lock(req->db);
    if (sqlite3_prepare_v2(cph_db_handle(req->db), SNAPSHOT_SELECT "WHERE version < ?1 ORDER BY version DESC LIMIT ?2", -1, &st,
                           NULL) != SQLITE_OK) {
        cph_db_unlock(req->db);
        json_decref(items);
        internal(req);
        return;
    }
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int64_t)json_array_size(items) == limit) {
            next = json_integer(json_integer_value(json_object_get(json_array_get(items, (size_t)limit - 1), "version")));
            break;
        }
        json_array_append_new(items, snapshot_row(req->db, st));
    }
    sqlite3_finalize(st);
    cph_db_unlock(req->db);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(items);
        json_decref(next);
        internal(req);
        return;
    }
    cph_api_reply(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

/* The snapshots row of version (with its redacted body when body is set); NULL and *found 0 when there is none. */
static json_t *load_version(cph_db_t *db, int64_t version, int body, int *found)
{
    sqlite3_stmt *st = NULL;
    json_t *row = NULL, *b;

    *found = 0;
    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT version, hash, author, created_at, state IS NOT NULL, body FROM snapshots WHERE version = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, version);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *found = 1;
            row = snapshot_row(db, st);
            if (body && (b = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL)) != NULL) {
                json_object_set_new(row, "body", cph_snapbuild_redact(b));
                json_decref(b);
            } else if (body) {
                json_decref(row);
                row = NULL;
            }
        }
    }
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return row;
}

static void snapshot_one(cph_api_req_t *req, int64_t version)
{
    int found;
    json_t *row = load_version(req->db, version, 1, &found);

    if (row != NULL)
        cph_api_reply(req, 200, row);
    else if (!found)
        cph_api_error(req, 404, "not_found", NULL, "no such version");
    else
        internal(req);
}

static void snapshot_diff(cph_api_req_t *req, int64_t from)
{
    json_t *a = NULL, *b = NULL, *changes;
    char epoch[33];
    uint64_t current = 0;
    int64_t to;
    int found = 1, truncated = 0;

    cph_db_lock(req->db);
    if (cph_db_meta(req->db, epoch, &current) != 0)
        current = 0;
    cph_db_unlock(req->db);
    if (query_int(req, "to", 1, INT64_MAX, (int64_t)current, &to) != 0)
        return;
    if ((a = load_version(req->db, from, 1, &found)) == NULL || (b = load_version(req->db, to, 1, &found)) == NULL) {
        if (!found)
            cph_api_error(req, 404, "not_found", a == NULL ? NULL : "/to", "no such version");
        else
            internal(req);
        goto Exit;
    }
    changes = cph_history_diff(json_object_get(a, "body"), json_object_get(b, "body"), &truncated);
    cph_api_reply(req, 200,
                  json_pack("{s:I, s:I, s:o, s:b}", "from", (json_int_t)from, "to", (json_int_t)to, "changes", changes, "truncated",
                            truncated));
Exit:
    json_decref(a);
    json_decref(b);
}

static void snapshot_rollback(cph_api_req_t *req, int64_t version)
{
    cph_history_rollback_t rb = {.version = (uint64_t)version};
    cph_error_t err;
    uint64_t written;
    json_t *row;
    int found;

    if (cph_db_write(req->db, req->actor, cph_history_rollback_cb, &rb, &written, &err) != 0) {
        if (strcmp(err.code, "not_restorable") == 0)
            cph_api_error(req, 409, "not_restorable", NULL, err.msg);
        else
            cph_api_fail(req, &err);
        return;
    }
    if ((row = load_version(req->db, (int64_t)written, 0, &found)) == NULL) {
        internal(req);
        return;
    }
    cph_api_written(req, 200,
                    json_pack("{s:I, s:O, s:b}", "rolled_back_to", (json_int_t)version, "hash", json_object_get(row, "hash"),
                              "same_body", strcmp(json_string_value(json_object_get(row, "hash")), rb.hash) == 0),
                    written);
    json_decref(row);
}

/* "12", "12/diff" or "12/rollback" -> the version and the sub-resource (NULL for the version itself). Returns 0 or -1. */
static int parse_key(const char *key, int64_t *version, const char **sub)
{
    char buf[32];
    size_t n = strcspn(key, "/");

    *sub = key[n] == '/' ? key + n + 1 : NULL;
    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, key, n);
    buf[n] = '\0';
    return cph_history_parse_int(buf, 1, INT64_MAX, version);
}

void cph_api_snapshots(cph_api_req_t *req)
{
    const char *sub;
    int64_t version;

    if (req->key == NULL) {
        snapshot_list(req);
        return;
    }
    if (parse_key(req->key, &version, &sub) != 0) {
        cph_api_error(req, 400, "invalid", NULL, "a version is a positive integer");
        return;
    }
    if (sub != NULL && strcmp(sub, "diff") != 0 && strcmp(sub, "rollback") != 0) {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    req->allow = sub != NULL && strcmp(sub, "rollback") == 0 ? CPH_API_POST : CPH_API_GET;
    if (req->method != req->allow) {
        cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
        return;
    }
    if (sub == NULL)
        snapshot_one(req, version);
    else if (strcmp(sub, "diff") == 0)
        snapshot_diff(req, version);
    else
        snapshot_rollback(req, version);
}
