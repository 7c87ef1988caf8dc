/*
 * admin_auth: who is calling the admin API - admin accounts (argon2id passwords), their browser sessions (an
 * HttpOnly cookie plus a CSRF token for every mutating request) and admin API tokens for scripts (stored as sha256
 * only, shown once). Every caller resolves to one principal: a role (owner, editor scoped to systems, viewer) that
 * rbac.c checks against the route being called.
 */
#ifndef CPH_ADMIN_AUTH_H
#define CPH_ADMIN_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"

#define CPH_ADMIN_SYSTEMS_MAX 64
#define CPH_ADMIN_SESSION_COOKIE "cephalo_session"
#define CPH_ADMIN_CSRF_HEADER "X-CSRF-Token"

typedef enum en_cph_admin_role_t {
    CPH_ADMIN_VIEWER = 1, /* reads everything an admin may read; writes nothing */
    CPH_ADMIN_EDITOR = 2, /* writes what belongs to its systems */
    CPH_ADMIN_OWNER = 3,  /* everything, including admin accounts, tokens, signing keys and rollback */
} cph_admin_role_t;

/** The authenticated caller of one admin request. */
typedef struct st_cph_admin_principal_t {
    char actor[80];     /* for the audit: "account:<name>" or "token:<name>" */
    int64_t account_id; /* the account (a session, or a token an account created); 0 for the bootstrap token */
    int64_t token_id;   /* the admin token used, 0 for a session */
    cph_admin_role_t role;
    int64_t systems[CPH_ADMIN_SYSTEMS_MAX]; /* an editor's scope (systems.id); empty for owner and viewer */
    size_t nsystems;
    int via_session;    /* authenticated by the session cookie: mutating requests need the CSRF header */
    char name[72];      /* the account's name (a session, or an account's token), else the token's name */
    int64_t session_id; /* the session used, 0 for a token */
    char csrf[65];      /* the session's CSRF token (64 hex), "" for a token */
} cph_admin_principal_t;

/** "owner" | "editor" | "viewer" -> the role, 0 for anything else. */
cph_admin_role_t cph_admin_role_parse(const char *name);
/** The role's name. */
const char *cph_admin_role_name(cph_admin_role_t role);
/** 1 when an editor principal's scope holds system_id (always 1 for an owner, 0 for a viewer). */
int cph_admin_in_scope(const cph_admin_principal_t *p, int64_t system_id);

#define CPH_ADMIN_NAME_MAX 64               /* account and token names: 1..64 of [A-Za-z0-9._@-] */
#define CPH_ADMIN_PASSWORD_MIN 12           /* bytes; the most is CPH_PASSWORD_MAX */
#define CPH_ADMIN_SESSION_TTL_S (12 * 3600) /* a session ends this long after the login ... */
#define CPH_ADMIN_SESSION_IDLE_S (30 * 60)  /* ... or this long after its last use */
#define CPH_ADMIN_TOKEN_HEX 64              /* a session cookie and an admin API token: 32 random bytes in hex */

/** 1 when name is 1..CPH_ADMIN_NAME_MAX characters of [A-Za-z0-9._@-]. */
int cph_admin_name_valid(const char *name);
/** The lower-case sha256 hex of s (len bytes) into out. */
void cph_admin_sha256_hex(const char *s, size_t len, char out[65]);
/** 64 lower-case hex characters from 32 RAND_bytes into out. Returns 0 or -1 (no randomness). */
int cph_admin_random_hex(char out[65]);

/**
 * Resolves a presented admin API token (the Bearer value) to p: compares its sha256 with every stored hash in
 * constant time, refuses an expired token and one whose account is disabled; an account's token gets the lower of
 * its own and the account's role and, as an editor, only the systems both hold. Marks the token used (last_used_at,
 * at most once a minute). Takes the lock. Returns 1 when p was filled, 0 otherwise.
 */
int cph_admin_auth_token(cph_db_t *db, const char *token, int64_t now, cph_admin_principal_t *p);
/**
 * Resolves a session cookie value (64 hex) to p (via_session, csrf, the account's role and systems). An expired or
 * idle session is deleted; a live one's last_seen_at is moved to now. Takes the lock. Returns 1 when p was filled.
 */
int cph_admin_auth_session(cph_db_t *db, const char *cookie, int64_t now, cph_admin_principal_t *p);
/** 1 when the presented CSRF header equals p's session token (constant time); 0 for NULL or a token principal. */
int cph_admin_csrf_ok(const cph_admin_principal_t *p, const char *header);
/**
 * 1 when a mutating request's Origin header (NULL: absent, allowed) is "http://<host>" or "https://<host>" for the
 * request's Host header; 0 otherwise (also when Host is missing while Origin is present).
 */
int cph_admin_origin_ok(const char *origin, const char *host);

/** What cph_admin_login decided. */
typedef enum en_cph_admin_login_t {
    CPH_ADMIN_LOGIN_OK = 0,
    CPH_ADMIN_LOGIN_INVALID = 1, /* unknown name, wrong password or disabled account: 401 */
    CPH_ADMIN_LOGIN_LIMITED = 2, /* too many failures for this IP or name: 429, *retry_after set */
    CPH_ADMIN_LOGIN_ERROR = 3,   /* internal */
} cph_admin_login_t;

/**
 * A password login from ip: rate-limited per IP and per lower-cased name (loginlimit.h, process-wide), one argon2id
 * verify whatever the outcome (a dummy hash for an unknown name), run without the lock. On success creates a session
 * (cookie and csrf: 64 hex each, only the cookie's sha256 is stored), sets last_login_at, prunes dead sessions and
 * fills p as cph_admin_auth_session would. Every outcome but LIMITED writes an audit row (login / login_failed).
 */
cph_admin_login_t cph_admin_login(cph_db_t *db, const char *name, const char *password, const char *ip, int64_t now,
                                  char cookie[65], cph_admin_principal_t *p, int64_t *retry_after);
/** Deletes the session (logout) and audits it. Takes the lock. Returns 0 or -1. */
int cph_admin_logout(cph_db_t *db, const cph_admin_principal_t *p);
/** Forgets the process-wide login failure counts (tests). */
void cph_admin_login_reset(void);

/**
 * Inserts one audit row for an admin_* write (no version bump): version = the current generation, before/after
 * borrowed (never holding hashes or tokens). Caller holds the lock. Returns 0 or -1 with err {internal}.
 */
int cph_admin_audit(cph_db_t *db, const char *actor, const char *action, const char *entity_type, int64_t entity_id,
                    const json_t *before, const json_t *after, cph_error_t *err);
/** Deletes every session and token of account_id (password change, disable, demotion, delete). Lock held. 0 or -1. */
int cph_admin_revoke_account(cph_db_t *db, int64_t account_id);

/**
 * The bootstrap owner (main.c): with password (CEPHALO_ADMIN_PASSWORD) creates account user as owner or updates its
 * password (re-enabling and promoting it to owner); without one, when no account exists at all, generates a password
 * (32 hex) into generated and creates the account; otherwise does nothing (generated ""). Takes the lock. 0 or -1.
 */
int cph_admin_bootstrap(cph_db_t *db, const char *user, const char *password, char generated[65], cph_error_t *err);

/**
 * The bootstrap owner token "admin" (main.c): token (CEPHALO_ADMIN_TOKEN) replaces the stored one (and makes the row an
 * owner token without account or expiry again); without it, when no token "admin" exists, a token (64 hex) is
 * generated into generated and stored; otherwise nothing (generated ""). Only the sha256 is stored. Takes the lock.
 */
int cph_admin_bootstrap_token(cph_db_t *db, const char *token, char generated[65], cph_error_t *err);

/** Whether the session cookie carries "; Secure" (main.c: --admin-cookie-secure). Default on. */
void cph_admin_set_cookie_secure(int on);
int cph_admin_cookie_secure(void);

#endif
