/*
 * store_api_key: the api_keys table and its role and group links.
 *
 * Keys are "<prefix>.<secret>". The prefix (10 random lower-case hex characters) is stored in clear and is unique:
 * the data plane will find the row by it without scanning. The secret is 32 bytes from OpenSSL's RAND_bytes
 * (unpadded base64url, 43 characters) and only its SHA-256 is stored: with 256 bits of entropy there is nothing to
 * brute-force, so a slow hash (argon2) or a keyed one adds nothing but cost on every request. The secret exists in
 * clear only in the normalised object of the creating request and in its answer (api_crud.c shows it once); the
 * stored and audited representation has the prefix only.
 *
 * Roles and groups are names in the key's own system, like a group's roles.
 *
 * The data planes check keys themselves (docs/access.md section 3): the snapshot carries every usable key with the SHA-256 of
 * its secret (cph_store_api_key_snapshot). A revoked key is simply left out, and so is a deleted one; an expired key
 * stays in with its expiry, so the body depends on the rows only and never on the clock.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "controlplane/store_api_key.h"
#include "controlplane/ident.h"
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "cp/store_api_key"

#define SELECT_API_KEY                                                                                                             \
    "SELECT k.id, s.code, k.name, k.prefix, "                                                                                      \
    "(SELECT json_group_array(n) FROM (SELECT r.name AS n FROM api_key_roles kr JOIN roles r ON r.id = kr.role_id "                \
    "WHERE kr.api_key_id = k.id ORDER BY r.name)), "                                                                               \
    "(SELECT json_group_array(n) FROM (SELECT g.name AS n FROM api_key_groups kg JOIN groups g ON g.id = kg.group_id "             \
    "WHERE kg.api_key_id = k.id ORDER BY g.name)), "                                                                               \
    "k.expires_at, k.revoked, k.created_at, k.updated_at FROM api_keys k JOIN systems s ON s.id = k.system_id "

const cph_store_ops_t cph_store_api_key_ops = {
    "api_key",
    cph_store_api_key_normalize,
    cph_store_api_key_list,
    cph_store_api_key_get,
    cph_store_api_key_insert,
    cph_store_api_key_update,
    cph_store_api_key_delete,
};

/* Adds "key", "prefix" and "secret_sha256" to k. Returns 0, or -1 with err {internal} when there is no randomness. */
static int generate(json_t *k, cph_error_t *err)
{
    unsigned char raw[CPH_API_KEY_SECRET_BYTES], pre[CPH_API_KEY_PREFIX_LEN / 2], md[32];
    char b64[CPH_B64URL_ENCODE_CAP(sizeof(raw))], prefix[CPH_API_KEY_PREFIX_LEN + 1], key[128], hex[65];
    unsigned int mdlen = 0;
    size_t n;

    if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(pre, sizeof(pre)) != 1) {
        cph_log_error(MODULE, "RAND_bytes failed");
        return cph_error_set(err, "internal", "", "cannot generate a key");
    }
    n = cph_b64url_encode(raw, sizeof(raw), b64, sizeof(b64));
    for (size_t i = 0; i < sizeof(pre); ++i)
        snprintf(prefix + 2 * i, 3, "%02x", pre[i]);
    EVP_Digest(b64, n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(key, sizeof(key), "%s.%s", prefix, b64);
    json_object_set_new(k, "key", json_string(key));
    json_object_set_new(k, "prefix", json_string(prefix));
    json_object_set_new(k, "secret_sha256", json_string(hex));
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

/* expires_at: absent or null -> null; else RFC 3339, stored in UTC. */
static int get_expiry(const json_t *in, json_t **out, cph_error_t *err)
{
    json_t *v = json_object_get(in, "expires_at");
    char utc[32];

    if (v == NULL || json_is_null(v)) {
        *out = json_null();
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > 64 || strlen(json_string_value(v)) != json_string_length(v) ||
        cph_ident_parse_time(json_string_value(v), utc, sizeof(utc)) != 0)
        return cph_error_set(err, "invalid", "/expires_at", "must be an RFC 3339 date-time (2026-01-02T03:04:05Z) or null");
    *out = json_string(utc);
    return 0;
}

json_t *cph_store_api_key_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"system", "name", "roles", "groups", "expires_at", "revoked", NULL};
    json_t *copy, *out = NULL, *roles = NULL, *groups = NULL, *expiry = NULL;
    const char *code, *name;
    int revoked;

    if ((copy = cph_store_writable_copy(in, "api_key", err)) == NULL)
        return NULL;
    json_object_del(copy, "prefix"); /* read-only, like id: a GET answer can be PUT back */
    if (cph_ident_check_members(copy, ALLOWED, err) != 0 ||
        cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 1, &code, err) != 0 ||
        cph_ident_get_string(copy, "name", CPH_IDENT_NAME, 1, &name, err) != 0 ||
        cph_ident_get_names(copy, "roles", CPH_IDENT_NAME, &roles, err) != 0 ||
        cph_ident_get_names(copy, "groups", CPH_IDENT_NAME, &groups, err) != 0 || get_expiry(copy, &expiry, err) != 0 ||
        cph_ident_get_bool(copy, "revoked", 0, &revoked, err) != 0)
        goto Exit;
    out = json_pack("{s:s, s:s, s:O, s:O, s:O, s:b}", "system", code, "name", name, "roles", roles, "groups", groups, "expires_at",
                    expiry, "revoked", revoked);
    if (generate(out, err) != 0) {
        json_decref(out);
        out = NULL;
    }
Exit:
    json_decref(roles);
    json_decref(groups);
    json_decref(expiry);
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "system",
                     (const char *)sqlite3_column_text(st, 1), "name", (const char *)sqlite3_column_text(st, 2), "prefix",
                     (const char *)sqlite3_column_text(st, 3), "roles", cph_store_column_json(st, 4), "groups",
                     cph_store_column_json(st, 5), "expires_at", cph_ident_column_text(st, 6), "revoked",
                     sqlite3_column_int(st, 7) != 0, "created_at", (const char *)sqlite3_column_text(st, 8), "updated_at",
                     (const char *)sqlite3_column_text(st, 9));
}

json_t *cph_store_api_key_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_API_KEY "ORDER BY s.code, k.name", row_to_json, err);
}

json_t *cph_store_api_key_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_ident_get_scoped(db, SELECT_API_KEY "WHERE ", "k.id", "s.code", "k.name", row_to_json, "api_key", key, err);
}

/* Replaces the role and group links of key id, names looked up in system sid. */
static int write_links(cph_db_t *db, int64_t id, int64_t sid, const json_t *k, cph_error_t *err)
{
    static const char *const MEMBER[] = {"roles", "groups"};
    static const char *const INSERT[] = {"INSERT INTO api_key_roles (api_key_id, role_id) VALUES (?1, ?2)",
                                         "INSERT INTO api_key_groups (api_key_id, group_id) VALUES (?1, ?2)"};
    json_t *v;
    size_t i;
    char path[64];
    int64_t xid;

    if (cph_ident_exec_ids(db, "DELETE FROM api_key_roles WHERE api_key_id = ?1", id, 0, err) != 0 ||
        cph_ident_exec_ids(db, "DELETE FROM api_key_groups WHERE api_key_id = ?1", id, 0, err) != 0)
        return -1;
    for (int m = 0; m < 2; ++m) {
        json_array_foreach(json_object_get(k, MEMBER[m]), i, v)
        {
            snprintf(path, sizeof(path), "/%s/%zu", MEMBER[m], i);
            if (cph_ident_scoped_id(db, MEMBER[m], sid, json_string_value(v), path, &xid, err) != 0 ||
                cph_ident_exec_ids(db, INSERT[m], id, xid, err) != 0)
                return -1;
        }
    }
    return 0;
}

/* {conflict} at /name when another key (id != self) of system sid has this name. */
static int name_taken(cph_db_t *db, int64_t sid, const char *name, int64_t self, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT 1 FROM api_keys WHERE system_id = ?1 AND name = ?2 AND id != ?3", -1, &st,
                           NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare name check");
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, self);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return cph_error_set(err, "conflict", "/name", "the system already has an api key with this name");
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "name check");
}

/* Writes the row (?1 system_id, ?2 name, ?3 expires_at, ?4 revoked, ?5 now, ?6 prefix | id, ?7 secret_sha256), then links. */
static int write_key(cph_db_t *db, const char *sql, int64_t *id, const json_t *k, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    char now[32];

    if (cph_ident_system_id(db, json_string_value(json_object_get(k, "system")), "/system", &sid, err) != 0 ||
        name_taken(db, sid, json_string_value(json_object_get(k, "name")), *id, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, json_string_value(json_object_get(k, "name")), -1, SQLITE_TRANSIENT);
    cph_ident_bind_text(st, 3, json_string_value(json_object_get(k, "expires_at")));
    sqlite3_bind_int(st, 4, json_is_true(json_object_get(k, "revoked")));
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    if (*id != 0) {
        sqlite3_bind_int64(st, 6, *id);
    } else {
        sqlite3_bind_text(st, 6, json_string_value(json_object_get(k, "prefix")), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, json_string_value(json_object_get(k, "secret_sha256")), -1, SQLITE_TRANSIENT);
    }
    /* the name was checked: a UNIQUE failure now is the random prefix colliding (about 2^-40 per pair of keys) */
    if (cph_ident_step(db, st, "api_key", "", "the generated key prefix is taken: retry", *id != 0, err) != 0)
        return -1;
    if (*id == 0)
        *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return write_links(db, *id, sid, k, err);
}

int cph_store_api_key_insert(cph_db_t *db, const json_t *k, int64_t *id, cph_error_t *err)
{
    *id = 0;
    return write_key(db,
                     "INSERT INTO api_keys (system_id, name, expires_at, revoked, created_at, updated_at, prefix, secret_sha256) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                     id, k, err);
}

int cph_store_api_key_update(cph_db_t *db, int64_t id, const json_t *k, cph_error_t *err)
{
    return write_key(db,
                     "UPDATE api_keys SET system_id = ?1, name = ?2, expires_at = ?3, revoked = ?4, updated_at = ?5 WHERE id = ?6",
                     &id, k, err);
}

#define SELECT_API_KEY_SNAPSHOT                                                                                                    \
    "SELECT k.id, k.prefix, k.secret_sha256, s.code, "                                                                             \
    "(SELECT json_group_array(n) FROM (SELECT r.name AS n FROM api_key_roles kr JOIN roles r ON r.id = kr.role_id "                \
    "WHERE kr.api_key_id = k.id ORDER BY r.name)), "                                                                               \
    "(SELECT json_group_array(n) FROM (SELECT g.name AS n FROM api_key_groups kg JOIN groups g ON g.id = kg.group_id "             \
    "WHERE kg.api_key_id = k.id ORDER BY g.name)), "                                                                               \
    "CAST(strftime('%s', k.expires_at) AS INTEGER) FROM api_keys k JOIN systems s ON s.id = k.system_id "                          \
    "WHERE k.revoked = 0 ORDER BY k.prefix"

static json_t *snapshot_row(sqlite3_stmt *st)
{
    json_t *expires = sqlite3_column_type(st, 6) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, 6));

    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0), "prefix",
                     (const char *)sqlite3_column_text(st, 1), "secret_sha256", (const char *)sqlite3_column_text(st, 2), "system",
                     (const char *)sqlite3_column_text(st, 3), "roles", cph_store_column_json(st, 4), "groups",
                     cph_store_column_json(st, 5), "expires_at", expires);
}

json_t *cph_store_api_key_snapshot(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_API_KEY_SNAPSHOT, snapshot_row, err);
}

int cph_store_api_key_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "api_keys", "api_key", NULL, id, err);
}
