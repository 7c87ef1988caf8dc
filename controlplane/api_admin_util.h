/*
 * api_admin_util: what the admin session, account and token handlers (api_admin.c, api_admin_tokens.c) share - the
 * strict body readers (every error a 400 at its JSON pointer), the system-scope links of accounts and tokens, and
 * the lock + transaction pair these writes run in (they are not configuration: no version bump, no snapshot).
 */
#ifndef CPH_API_ADMIN_UTIL_H
#define CPH_API_ADMIN_UTIL_H

#include <stdint.h>
#include <jansson.h>
#include <sqlite3.h>
#include "controlplane/admin_auth.h"
#include "controlplane/db.h"
#include "proto/proto.h"

/* The system codes linked to an account / a token (?1: its id), for cph_admin_codes_of. */
#define CPH_ADMIN_ACCOUNT_SYSTEMS                                                                                                  \
    "SELECT s.code FROM admin_account_systems x JOIN systems s ON s.id = x.system_id WHERE x.account_id = ?1 ORDER BY s.code"
#define CPH_ADMIN_TOKEN_SYSTEMS                                                                                                    \
    "SELECT s.code FROM admin_token_systems x JOIN systems s ON s.id = x.system_id WHERE x.token_id = ?1 ORDER BY s.code"

/** Refuses a member of body not in allowed (NULL-terminated): -1 with err {unknown_field} at its path. */
int cph_admin_body_members(const json_t *body, const char *const *allowed, cph_error_t *err);
/** body[name] as a string in *out (NULL when absent and !required); -1 with err for a missing or non-string member. */
int cph_admin_body_string(const json_t *body, const char *name, int required, const char **out, cph_error_t *err);
/** The "role" member in *role (0 when absent and !required); -1 with err {invalid} for anything but a role name. */
int cph_admin_body_role(const json_t *body, int required, cph_admin_role_t *role, cph_error_t *err);
/**
 * The "systems" member as distinct system ids (absent: *n = SIZE_MAX): an array of existing system codes, at most
 * CPH_ADMIN_SYSTEMS_MAX; duplicates are dropped. Lock held. -1 with err {invalid} at the element.
 */
int cph_admin_body_systems(sqlite3 *sql, const json_t *body, int64_t *ids, size_t *n, cph_error_t *err);
/** The system codes of ids, as a new JSON array (unknown ids skipped). Lock held. */
json_t *cph_admin_codes_of_ids(sqlite3 *sql, const int64_t *ids, size_t n);
/** The codes query q (CPH_ADMIN_ACCOUNT_SYSTEMS / CPH_ADMIN_TOKEN_SYSTEMS) gives for id, as a new JSON array. Lock held. */
json_t *cph_admin_codes_of(sqlite3 *sql, const char *q, int64_t id);
/** Replaces the system links of id in table (col: account_id / token_id) by ids. Lock held. 0, or -1 on a database error. */
int cph_admin_set_systems(sqlite3 *sql, const char *table, const char *col, int64_t id, const int64_t *ids, size_t n);
/** Takes the database lock and begins an IMMEDIATE transaction: 0, or -1 with err (the lock released). */
int cph_admin_begin(cph_db_t *db, cph_error_t *err);
/** COMMIT when ret is 0, else ROLLBACK; releases the lock. Returns ret, or -1 when the commit failed. */
int cph_admin_end(cph_db_t *db, int ret, cph_error_t *err);
/** A path key as a positive row id (1..18 digits, no sign, no leading zero); 0 for anything else. */
int64_t cph_admin_parse_id(const char *key);

#endif
