/*
 * ident: what the identity stores (store_system, store_role, store_group, store_user, store_api_key) share -
 * strict validation of request members with JSON-pointer paths, code/name lookups, link-table writes and the
 * "<system>:<name>" key of system-scoped objects. Lookups and writes run with the database lock held.
 */
#ifndef CPH_IDENT_H
#define CPH_IDENT_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** What a string member may hold. */
typedef enum en_cph_ident_kind_t {
    CPH_IDENT_CODE,     /* a system code: [a-z0-9_-]{1,64} */
    CPH_IDENT_NAME,     /* a role, group or api key name: [A-Za-z0-9_.-]{1,64} */
    CPH_IDENT_USERNAME, /* [A-Za-z0-9_.@+-]{1,128} */
    CPH_IDENT_EMAIL,    /* 3..254 bytes, one '@' with text on both sides, no space or control character */
    CPH_IDENT_TEXT,     /* a display name: 1..200 bytes, no control character */
} cph_ident_kind_t;

#define CPH_IDENT_LIST_MAX 256 /* members of one list (roles, groups, systems) */

/** Refuses any member of obj not in allowed (NULL-terminated): {unknown_field} at /<member>. obj is an object. */
int cph_ident_check_members(const json_t *obj, const char *const *allowed, cph_error_t *err);
/** Checks that v is a string of kind; err {invalid} at path. Returns 0 or -1. */
int cph_ident_check_string(const json_t *v, cph_ident_kind_t kind, const char *path, cph_error_t *err);
/**
 * The string member of obj, checked as kind, into *out (borrowed). Absent: {missing_field} when required, else *out
 * = NULL (a JSON null counts as absent only when !required). Returns 0 or -1.
 */
int cph_ident_get_string(const json_t *obj, const char *member, cph_ident_kind_t kind, int required, const char **out,
                         cph_error_t *err);
/** The boolean member of obj into *out, dflt when absent; {invalid} when not a boolean. Returns 0 or -1. */
int cph_ident_get_bool(const json_t *obj, const char *member, int dflt, int *out, cph_error_t *err);
/**
 * The list member of obj ([] when absent) as a new array of strings of kind: {invalid} for a non-array, a bad item
 * or more than CPH_IDENT_LIST_MAX items, {duplicate} at the repeated item. Returns 0 or -1.
 */
int cph_ident_get_names(const json_t *obj, const char *member, cph_ident_kind_t kind, json_t **out, cph_error_t *err);
/**
 * The list member of obj ([] when absent) of {"system": code, "name": name} objects, as a new normalised array;
 * errors as cph_ident_get_names, plus {unknown_field}/{missing_field} inside an item. Returns 0 or -1.
 */
int cph_ident_get_refs(const json_t *obj, const char *member, json_t **out, cph_error_t *err);

/** The id of the system with code into *id; {unknown_system} at path if none. Returns 0 or -1. */
int cph_ident_system_id(cph_db_t *db, const char *code, const char *path, int64_t *id, cph_error_t *err);
/**
 * The id of the role (table "roles") or group (table "groups") named name in system_id into *id; {unknown_role} /
 * {unknown_group} at path if none. Returns 0 or -1.
 */
int cph_ident_scoped_id(cph_db_t *db, const char *table, int64_t system_id, const char *name, const char *path, int64_t *id,
                        cph_error_t *err);
/** Runs sql (no result rows) with ?1 = a and ?2 = b (b unbound when sql has one parameter). Returns 0 or -1. */
int cph_ident_exec_ids(cph_db_t *db, const char *sql, int64_t a, int64_t b, cph_error_t *err);
/**
 * Links owner to the roles and to the groups obj lists as {system, name} references: for each, the id is looked up
 * ({unknown_system} / {unknown_role} / {unknown_group} at "/roles/<i>" or "/groups/<i>") and insert[0] (roles) or
 * insert[1] (groups) runs with ?1 = owner, ?2 = that id. Returns 0 or -1.
 */
int cph_ident_link_refs(cph_db_t *db, const json_t *obj, int64_t owner, const char *const insert[2], cph_error_t *err);
/** Runs sql (one boolean result) with ?1 = a, ?2 = b: true is {conflict} at path with msg. Returns 0 or -1. */
int cph_ident_refuse(cph_db_t *db, const char *sql, int64_t a, int64_t b, const char *path, const char *msg, cph_error_t *err);
/**
 * Steps a bound INSERT/UPDATE and finalizes it, like cph_store_step_write, but a UNIQUE violation is {conflict} at
 * conflict_path with conflict_msg.
 */
int cph_ident_step(cph_db_t *db, sqlite3_stmt *st, const char *entity, const char *conflict_path, const char *conflict_msg,
                   int expect_row, cph_error_t *err);
/**
 * One object by key, like cph_store_get (an all-digit key is tried as an id first, then any key as a name) but for
 * SELECTs longer than store.c's buffer (the membership subqueries). NULL with err {not_found} or {internal}.
 */
json_t *cph_ident_get(cph_db_t *db, const char *select, const char *id_col, const char *name_col, cph_store_row_fn row,
                      const char *entity, const char *key, cph_error_t *err);
/**
 * One system-scoped object by key: an all-digit key is an id, "<system code>:<name>" a name in a system. select ends
 * in "WHERE "; id_col, code_col and name_col complete it. NULL with err {not_found} or {internal}.
 */
json_t *cph_ident_get_scoped(cph_db_t *db, const char *select, const char *id_col, const char *code_col, const char *name_col,
                             cph_store_row_fn row, const char *entity, const char *key, cph_error_t *err);
/**
 * Parses an RFC 3339 date-time ("2026-01-02T03:04:05Z": 'T' and 'Z' in either case, an optional fraction of 1 to 9
 * digits, "Z" or "+hh:mm" / "-hh:mm") and writes the same instant in UTC with milliseconds ("...05.000Z", the
 * format of every stored time) into out (at least 32 bytes). Years 1970..9999. Returns 0 or -1.
 */
int cph_ident_parse_time(const char *s, char *out, size_t cap);
/** Binds s, or NULL when s is NULL. */
void cph_ident_bind_text(sqlite3_stmt *st, int idx, const char *s);
/** A text column as a JSON string, or JSON null for SQL NULL. */
json_t *cph_ident_column_text(sqlite3_stmt *st, int col);

#endif
