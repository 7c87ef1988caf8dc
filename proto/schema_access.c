/*
 * schema_access: the access members of a snapshot body (PROTOCOL.md section 5, "auth" to "revoked"): the token
 * settings with the optional external issuers (auth.issuers: each with its own public keys, checked exactly as the
 * top-level keys), the groups of every system with their roles, the endpoint rules, the usable API keys and the
 * revocation lists. proto/schema.c checks services, routes and keys and calls in here twice: once for the top-level
 * types and caps, once, after the keys, for every element. An endpoint rule's "rate_limits" are a route's
 * (proto/schema_policy.c).
 *
 * Everything here is optional (an older body without it still validates) and as strict as the rest of the schema:
 * unknown members are refused, integers are range-checked and never reals, every list has a cap checked before its
 * elements, and what must be unique (rule ids, (service, method, path), group (system, name), key ids and prefixes,
 * revoked user ids and jtis, the names inside a list) is checked with a JSON object used as a set, so a 65536-element
 * list costs one pass. The control plane emits the lists sorted (PROTOCOL.md), but order is not checked: the data
 * plane's compilers sort what they need. Secrets never reach an error message: key prefixes, hashes and jtis are
 * reported by pointer only.
 */
#include <stdio.h>
#include <string.h>
#include "proto/log.h"
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_access"

#define MAX_GROUPS 65536
#define MAX_GROUP_ROLES 1024
#define MAX_ENDPOINTS 65536
#define MAX_RULE_REFS 256 /* an endpoint's roles, and its groups */
#define MAX_API_KEYS 65536
#define MAX_KEY_NAMES 256 /* an API key's roles, and its groups */
#define MAX_REVOKED 65536 /* revoked users, and revoked tokens */
#define MAX_ISSUERS 16    /* external issuers in auth.issuers */
#define MAX_ISSUER_KEYS 16
#define TEXT_MAX 256 /* issuer, audience, claim names */
#define LEEWAY_S_MAX 300
#define TOKEN_BYTES_MIN 256
#define TOKEN_BYTES_MAX 65536
#define HEADER_PREFIX_MIN 2
#define HEADER_PREFIX_MAX 32
#define KEY_PREFIX_MIN 8
#define KEY_PREFIX_MAX 12
#define SHA256_HEX 64
#define JTI_MAX 128
#define ID_MAX ((json_int_t)INT64_MAX)
#define UNIX_TIME_MAX ((json_int_t)253402300799) /* 9999-12-31T23:59:59Z: time arithmetic stays far from overflow */
#define UNIQUE_KEY_MAX (CPH_SCHEMA_NAME_MAX + 16 + CPH_ENDPOINT_PATTERN_MAX)

static const char *const auth_members[] = {"issuer",        "audience", "leeway_s", "max_token_bytes",
                                           "header_prefix", "api",      "issuers",  NULL};
static const char *const issuer_members[] = {"name", "issuer", "audience", "system", "roles_claim", "groups_claim", "keys", NULL};
static const char *const group_members[] = {"system", "name", "roles", NULL};
static const char *const endpoint_members[] = {"id",     "service", "method", "path",        "public",
                                               "shadow", "roles",   "groups", "rate_limits", NULL};
static const char *const ref_members[] = {"system", "name", NULL};
static const char *const api_key_members[] = {"id", "prefix", "secret_sha256", "system", "roles", "groups", "expires_at", NULL};
static const char *const revoked_members[] = {"users", "tokens", NULL};
static const char *const revoked_user_members[] = {"id", "before", NULL};
static const char *const revoked_token_members[] = {"jti", "exp", NULL};

/* ---------------------------------------------------------------- string rules */

/* 1-256 bytes of printable ASCII (space to '~'). */
static int valid_text(const char *s, size_t len)
{
    if (len < 1 || len > TEXT_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* 2-32 bytes of [a-z0-9-] ending in '-': the start of every identity header the gateway sets or strips. */
static int valid_header_prefix(const char *s, size_t len)
{
    if (len < HEADER_PREFIX_MIN || len > HEADER_PREFIX_MAX || s[len - 1] != '-')
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
            return 0;
    return 1;
}

static int lower_hex(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!(s[i] >= '0' && s[i] <= '9') && !(s[i] >= 'a' && s[i] <= 'f'))
            return 0;
    return 1;
}

static int valid_key_prefix(const char *s, size_t len)
{
    return lower_hex(s, len, KEY_PREFIX_MIN, KEY_PREFIX_MAX);
}

static int valid_sha256_hex(const char *s, size_t len)
{
    return lower_hex(s, len, SHA256_HEX, SHA256_HEX);
}

/* 1-128 bytes of [A-Za-z0-9_-]. */
static int valid_jti(const char *s, size_t len)
{
    if (len < 1 || len > JTI_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' &&
            s[i] != '-')
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- generic pieces */

static int check_code_member(const json_t *obj, const char *base, const char *key, cph_error_t *err)
{
    return cph_schema_check_string_member(obj, base, key, 1, 0, cph_schema_valid_code, "a system code: 1 to 64 of a-z 0-9 _ -",
                                          err);
}

/* Unix seconds (integer, 0 to year 9999), or null when nullable. */
static int check_time_member(const json_t *obj, const char *base, const char *key, int required, int nullable, cph_error_t *err)
{
    if (nullable && json_is_null(json_object_get(obj, key)))
        return 0;
    return cph_schema_check_int_member(obj, base, key, required, 0, UNIX_TIME_MAX, err);
}

/* Records key in set (a JSON object used as a set); a key already there is "duplicate" at base + "/" + member. */
static int check_unique(json_t *set, const char *key, const char *base, const char *member, const char *what, cph_error_t *err)
{
    char p[256];

    if (json_object_get(set, key) != NULL)
        return cph_error_set(err, "duplicate", member != NULL ? cph_schema_at_key(p, base, member) : base, "%s is used twice",
                             what);
    if (json_object_set_new(set, key, json_true()) != 0)
        cph_fatal(MODULE, "out of memory");
    return 0;
}

static json_t *set_new(void)
{
    json_t *set = json_object();

    if (set == NULL)
        cph_fatal(MODULE, "out of memory");
    return set;
}

/* Checks one element of a list inside an element and writes its uniqueness key (UNIQUE_KEY_MAX bytes) into key. */
typedef int (*item_fn_t)(const json_t *item, const char *at, char *key, cph_error_t *err);

/* A name: the roles of a group, the roles and groups of an API key. */
static int name_item(const json_t *v, const char *at, char *key, cph_error_t *err)
{
    if (!json_is_string(v))
        return cph_schema_wrong_type(err, at, v, "a string");
    if (!cph_schema_valid_name(json_string_value(v), json_string_length(v)))
        return cph_error_set(err, "invalid", at, "a name is 1 to 64 characters of A-Z a-z 0-9 . _ -");
    snprintf(key, UNIQUE_KEY_MAX, "%s", json_string_value(v));
    return 0;
}

/* {"system", "name"}: the roles and groups of an endpoint rule. */
static int ref_item(const json_t *v, const char *at, char *key, cph_error_t *err)
{
    if (!json_is_object(v))
        return cph_schema_wrong_type(err, at, v, "an object");
    if (cph_schema_check_members(v, at, ref_members, err) != 0 || check_code_member(v, at, "system", err) != 0 ||
        cph_schema_check_name_member(v, at, "name", err) != 0)
        return -1;
    snprintf(key, UNIQUE_KEY_MAX, "%s %s", json_string_value(json_object_get(v, "system")),
             json_string_value(json_object_get(v, "name")));
    return 0;
}

/* An optional array member of at most max elements checked by fn, unique ("duplicate" at the later element). */
static int check_inner_list(const json_t *obj, const char *base, const char *key, size_t max, item_fn_t fn, cph_error_t *err)
{
    const json_t *list;
    char pa[256], p[256], ukey[UNIQUE_KEY_MAX];
    json_t *seen;
    int ret = -1;

    if (cph_schema_get_array(obj, base, key, 0, 0, max, &list, err) != 0)
        return -1;
    if (list == NULL || json_array_size(list) == 0)
        return 0;
    seen = set_new();
    cph_schema_at_key(pa, base, key);
    for (size_t i = 0; i != json_array_size(list); ++i) {
        cph_schema_at_index(p, pa, i);
        if (fn(json_array_get(list, i), p, ukey, err) != 0 || check_unique(seen, ukey, p, NULL, "this entry", err) != 0)
            goto Exit;
    }
    ret = 0;
Exit:
    json_decref(seen);
    return ret;
}

/* ---------------------------------------------------------------- auth.issuers */

/*
 * An issuer's keys are exactly the top-level "keys" (proto/schema.c): they are checked by cph_snapshot_validate on a
 * body holding only them, and an error's pointer "/keys/..." is moved under the issuer's.
 */
static int check_issuer_keys(const json_t *iss, const char *at, cph_error_t *err)
{
    const json_t *keys;
    json_t *body;
    char p[256];
    int ret;

    if (cph_schema_get_array(iss, at, "keys", 1, 0, MAX_ISSUER_KEYS, &keys, err) != 0)
        return -1;
    if ((body = json_pack("{s:[], s:[], s:O}", "services", "routes", "keys", keys)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if ((ret = cph_snapshot_validate(body, err)) != 0 && err != NULL && strncmp(err->path, "/keys", 5) == 0) {
        snprintf(p, sizeof(p), "%s%s", at, err->path);
        snprintf(err->path, sizeof(err->path), "%s", p);
    }
    json_decref(body);
    return ret;
}

/* ---------------------------------------------------------------- auth */

static int check_auth(const json_t *auth, cph_error_t *err)
{
    const char *b = "/auth";

    if (auth == NULL)
        return 0;
    if (cph_schema_check_members(auth, b, auth_members, err) != 0 ||
        cph_schema_check_string_member(auth, b, "issuer", 0, 0, valid_text, "1 to 256 printable ASCII characters", err) != 0 ||
        cph_schema_check_string_member(auth, b, "audience", 0, 1, valid_text, "null or 1 to 256 printable ASCII characters", err) !=
            0 ||
        cph_schema_check_int_member(auth, b, "leeway_s", 0, 0, LEEWAY_S_MAX, err) != 0 ||
        cph_schema_check_int_member(auth, b, "max_token_bytes", 0, TOKEN_BYTES_MIN, TOKEN_BYTES_MAX, err) != 0 ||
        cph_schema_check_string_member(auth, b, "header_prefix", 0, 0, valid_header_prefix, "2 to 32 of a-z 0-9 - ending in '-'",
                                       err) != 0)
        return -1;
    return cph_schema_check_string_member(auth, b, "api", 0, 1, cph_schema_valid_target_url,
                                          "null or http://HOST:PORT (the target URL form), at most 255 characters", err);
}

/* ---------------------------------------------------------------- top-level lists */

/* What one top-level list keeps unique while its elements are checked. */
typedef struct st_uniq_t {
    const json_t *services; /* the body's service names */
    json_t *a, *b;          /* two sets (ids, names, prefixes, ...) */
} uniq_t;

typedef int (*element_fn_t)(const json_t *item, const char *at, uniq_t *u, cph_error_t *err);

static int each(const json_t *list, const char *base, element_fn_t fn, const json_t *services, cph_error_t *err)
{
    uniq_t u = {services, NULL, NULL};
    char p[256];
    int ret = -1;

    if (list == NULL || json_array_size(list) == 0)
        return 0;
    u.a = set_new(), u.b = set_new();
    for (size_t i = 0; i != json_array_size(list); ++i)
        if (fn(json_array_get(list, i), cph_schema_at_index(p, base, i), &u, err) != 0)
            goto Exit;
    ret = 0;
Exit:
    json_decref(u.a);
    json_decref(u.b);
    return ret;
}

/* The decimal spelling of integer member key (already checked), for a set. */
static const char *int_key(const json_t *obj, const char *key, char buf[32])
{
    snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(obj, key)));
    return buf;
}

static int check_group(const json_t *g, const char *at, uniq_t *u, cph_error_t *err)
{
    char key[UNIQUE_KEY_MAX];

    if (!json_is_object(g))
        return cph_schema_wrong_type(err, at, g, "an object");
    if (cph_schema_check_members(g, at, group_members, err) != 0 || check_code_member(g, at, "system", err) != 0 ||
        cph_schema_check_name_member(g, at, "name", err) != 0 ||
        check_inner_list(g, at, "roles", MAX_GROUP_ROLES, name_item, err) != 0)
        return -1;
    snprintf(key, sizeof(key), "%s %s", json_string_value(json_object_get(g, "system")),
             json_string_value(json_object_get(g, "name")));
    return check_unique(u->a, key, at, "name", "this group name (in this system)", err);
}

static int check_endpoint_method(const json_t *e, const char *at, cph_error_t *err)
{
    const json_t *v;
    char p[256];

    if (cph_schema_get_member(e, at, "method", JSON_STRING, 1, &v, err) != 0)
        return -1;
    if (strcmp(json_string_value(v), "*") == 0 && json_string_length(v) == 1)
        return 0;
    for (size_t i = 0; cph_schema_methods[i] != NULL; ++i)
        if (strcmp(json_string_value(v), cph_schema_methods[i]) == 0 && json_string_length(v) == strlen(cph_schema_methods[i]))
            return 0;
    return cph_error_set(err, "invalid", cph_schema_at_key(p, at, "method"),
                         "\"method\" must be \"*\" or one of GET HEAD POST PUT PATCH DELETE OPTIONS CONNECT TRACE");
}

static int check_endpoint_path(const json_t *e, const char *at, cph_error_t *err)
{
    const json_t *v;
    char p[256];

    if (cph_schema_get_member(e, at, "path", JSON_STRING, 1, &v, err) != 0)
        return -1;
    cph_schema_at_key(p, at, "path");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cph_error_set(err, "invalid", p, "a path pattern holds no NUL byte");
    return cph_endpoint_pattern_check(json_string_value(v), p, err);
}

/* The members of one rule, in table order; a public rule lists no roles and no groups. */
static int check_endpoint_members(const json_t *e, const char *at, cph_error_t *err)
{
    const json_t *pub, *shadow;
    size_t nroles, ngroups;
    char p[256];

    if (cph_schema_check_members(e, at, endpoint_members, err) != 0 ||
        cph_schema_check_int_member(e, at, "id", 1, 1, ID_MAX, err) != 0 ||
        cph_schema_check_name_member(e, at, "service", err) != 0 || check_endpoint_method(e, at, err) != 0 ||
        check_endpoint_path(e, at, err) != 0 || cph_schema_get_member(e, at, "public", JSON_TRUE, 0, &pub, err) != 0 ||
        cph_schema_get_member(e, at, "shadow", JSON_TRUE, 0, &shadow, err) != 0 ||
        check_inner_list(e, at, "roles", MAX_RULE_REFS, ref_item, err) != 0 ||
        check_inner_list(e, at, "groups", MAX_RULE_REFS, ref_item, err) != 0 ||
        cph_schema_policy_check_rate_limits(e, at, err) != 0)
        return -1;
    nroles = json_array_size(json_object_get(e, "roles"));
    ngroups = json_array_size(json_object_get(e, "groups"));
    if (json_is_true(pub) && (nroles != 0 || ngroups != 0))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, at, nroles != 0 ? "roles" : "groups"),
                             "a public rule lists no roles and no groups");
    return 0;
}

static int check_endpoint(const json_t *e, const char *at, uniq_t *u, cph_error_t *err)
{
    const char *service;
    char key[UNIQUE_KEY_MAX], id[32], p[256];

    if (!json_is_object(e))
        return cph_schema_wrong_type(err, at, e, "an object");
    if (check_endpoint_members(e, at, err) != 0 || check_unique(u->a, int_key(e, "id", id), at, "id", "this rule id", err) != 0)
        return -1;
    service = json_string_value(json_object_get(e, "service"));
    if (json_object_get(u->services, service) == NULL)
        return cph_error_set(err, "unknown_service", cph_schema_at_key(p, at, "service"), "no service is named \"%s\"", service);
    snprintf(key, sizeof(key), "%s %s %s", service, json_string_value(json_object_get(e, "method")),
             json_string_value(json_object_get(e, "path")));
    return check_unique(u->b, key, at, "path", "this (service, method, path)", err);
}

static int check_api_key(const json_t *k, const char *at, uniq_t *u, cph_error_t *err)
{
    char id[32];

    if (!json_is_object(k))
        return cph_schema_wrong_type(err, at, k, "an object");
    if (cph_schema_check_members(k, at, api_key_members, err) != 0 ||
        cph_schema_check_int_member(k, at, "id", 1, 1, ID_MAX, err) != 0 ||
        cph_schema_check_string_member(k, at, "prefix", 1, 0, valid_key_prefix, "8 to 12 lower-case hex digits", err) != 0 ||
        cph_schema_check_string_member(k, at, "secret_sha256", 1, 0, valid_sha256_hex, "64 lower-case hex digits", err) != 0 ||
        check_code_member(k, at, "system", err) != 0 || check_inner_list(k, at, "roles", MAX_KEY_NAMES, name_item, err) != 0 ||
        check_inner_list(k, at, "groups", MAX_KEY_NAMES, name_item, err) != 0 ||
        check_time_member(k, at, "expires_at", 0, 1, err) != 0)
        return -1;
    if (check_unique(u->a, int_key(k, "id", id), at, "id", "this key id", err) != 0)
        return -1;
    return check_unique(u->b, json_string_value(json_object_get(k, "prefix")), at, "prefix", "this key prefix", err);
}

/*
 * An external issuer (auth.issuers[]): name and issuer unique, and never the control plane's own issuer (which
 * check_issuers passes as the JSON string u->services: an issuer refers to no service).
 */
static int check_issuer(const json_t *iss, const char *at, uniq_t *u, cph_error_t *err)
{
    const char *own;
    char p[256];

    if (!json_is_object(iss))
        return cph_schema_wrong_type(err, at, iss, "an object");
    if (cph_schema_check_members(iss, at, issuer_members, err) != 0 || cph_schema_check_name_member(iss, at, "name", err) != 0 ||
        cph_schema_check_string_member(iss, at, "issuer", 1, 0, valid_text, "1 to 256 printable ASCII characters", err) != 0 ||
        cph_schema_check_string_member(iss, at, "audience", 1, 1, valid_text, "null or 1 to 256 printable ASCII characters", err) !=
            0 ||
        check_code_member(iss, at, "system", err) != 0 ||
        cph_schema_check_string_member(iss, at, "roles_claim", 1, 0, valid_text, "1 to 256 printable ASCII characters", err) != 0 ||
        cph_schema_check_string_member(iss, at, "groups_claim", 1, 0, valid_text, "1 to 256 printable ASCII characters", err) !=
            0 ||
        check_issuer_keys(iss, at, err) != 0)
        return -1;
    own = u->services != NULL ? json_string_value(u->services) : NULL;
    if (strcmp(json_string_value(json_object_get(iss, "issuer")), own != NULL ? own : "cephalo") == 0)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, at, "issuer"), "an external issuer cannot be auth.issuer");
    if (check_unique(u->a, json_string_value(json_object_get(iss, "name")), at, "name", "this issuer name", err) != 0)
        return -1;
    return check_unique(u->b, json_string_value(json_object_get(iss, "issuer")), at, "issuer", "this issuer", err);
}

/* auth.issuers: its cap, then each issuer (checked after the rest of auth, so the own issuer is known). */
static int check_issuers(const json_t *auth, cph_error_t *err)
{
    const json_t *list;
    json_t *own;
    int ret;

    if (auth == NULL || cph_schema_get_array(auth, "/auth", "issuers", 0, 0, MAX_ISSUERS, &list, err) != 0)
        return auth == NULL ? 0 : -1;
    own = json_string(json_is_string(json_object_get(auth, "issuer")) ? json_string_value(json_object_get(auth, "issuer"))
                                                                      : "cephalo");
    ret = each(list, "/auth/issuers", check_issuer, own, err);
    json_decref(own);
    return ret;
}

/* ---------------------------------------------------------------- revoked */

static int check_revoked_user(const json_t *r, const char *at, uniq_t *u, cph_error_t *err)
{
    char id[32];

    if (!json_is_object(r))
        return cph_schema_wrong_type(err, at, r, "an object");
    if (cph_schema_check_members(r, at, revoked_user_members, err) != 0 ||
        cph_schema_check_int_member(r, at, "id", 1, 1, ID_MAX, err) != 0 || check_time_member(r, at, "before", 1, 0, err) != 0)
        return -1;
    return check_unique(u->a, int_key(r, "id", id), at, "id", "this user id", err);
}

static int check_revoked_token(const json_t *r, const char *at, uniq_t *u, cph_error_t *err)
{
    if (!json_is_object(r))
        return cph_schema_wrong_type(err, at, r, "an object");
    if (cph_schema_check_members(r, at, revoked_token_members, err) != 0 ||
        cph_schema_check_string_member(r, at, "jti", 1, 0, valid_jti, "1 to 128 of A-Z a-z 0-9 _ -", err) != 0 ||
        check_time_member(r, at, "exp", 1, 0, err) != 0)
        return -1;
    return check_unique(u->a, json_string_value(json_object_get(r, "jti")), at, "jti", "this jti", err);
}

static int check_revoked(const json_t *rev, cph_error_t *err)
{
    const json_t *users, *tokens;

    if (rev == NULL)
        return 0;
    if (cph_schema_check_members(rev, "/revoked", revoked_members, err) != 0 ||
        cph_schema_get_array(rev, "/revoked", "users", 0, 0, MAX_REVOKED, &users, err) != 0 ||
        each(users, "/revoked/users", check_revoked_user, NULL, err) != 0 ||
        cph_schema_get_array(rev, "/revoked", "tokens", 0, 0, MAX_REVOKED, &tokens, err) != 0)
        return -1;
    return each(tokens, "/revoked/tokens", check_revoked_token, NULL, err);
}

/* ---------------------------------------------------------------- entry points */

int cph_schema_access_check_top(const json_t *body, cph_error_t *err)
{
    const json_t *v;

    if (cph_schema_get_member(body, "", "auth", JSON_OBJECT, 0, &v, err) != 0 ||
        cph_schema_get_array(body, "", "groups", 0, 0, MAX_GROUPS, &v, err) != 0 ||
        cph_schema_get_array(body, "", "endpoints", 0, 0, MAX_ENDPOINTS, &v, err) != 0 ||
        cph_schema_get_array(body, "", "api_keys", 0, 0, MAX_API_KEYS, &v, err) != 0)
        return -1;
    return cph_schema_get_member(body, "", "revoked", JSON_OBJECT, 0, &v, err);
}

int cph_schema_access_check(const json_t *body, const json_t *services, cph_error_t *err)
{
    if (check_auth(json_object_get(body, "auth"), err) != 0 || check_issuers(json_object_get(body, "auth"), err) != 0 ||
        each(json_object_get(body, "groups"), "/groups", check_group, services, err) != 0 ||
        each(json_object_get(body, "endpoints"), "/endpoints", check_endpoint, services, err) != 0 ||
        each(json_object_get(body, "api_keys"), "/api_keys", check_api_key, services, err) != 0)
        return -1;
    return check_revoked(json_object_get(body, "revoked"), err);
}
