/*
 * token: the access tokens (JWT) the control plane issues at login and refresh, and the check of one of its own
 * tokens at logout (docs/access.md section 2).
 */
#ifndef CPH_TOKEN_H
#define CPH_TOKEN_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/signing.h"

#define CPH_TOKEN_JTI_BYTES 16 /* random; the jti is their lower-case hex */
#define CPH_TOKEN_JTI_MAX 128  /* the longest jti the data planes accept */

/** Who a token is for. */
typedef struct st_cph_token_claims_t {
    int64_t user_id;
    const char *username;
    const char *system;   /* a system code */
    const json_t *roles;  /* array of strings: the user's own role names in system (borrowed) */
    const json_t *groups; /* array of strings: the user's group names in system (borrowed) */
    int superuser;
} cph_token_claims_t;

/** An issued access token. */
typedef struct st_cph_token_t {
    char *jwt; /* malloc'd compact JWS */
    char jti[2 * CPH_TOKEN_JTI_BYTES + 1];
    int64_t iat;
    int64_t exp;
} cph_token_t;

/** A fresh jti: CPH_TOKEN_JTI_BYTES random bytes (OpenSSL RAND_bytes) in lower-case hex. Returns 0 or -1. */
int cph_token_new_jti(char jti[2 * CPH_TOKEN_JTI_BYTES + 1]);
/**
 * Signs an access token for c with key (the active key: cph_signing_active) as of now: header alg = key->alg (the
 * key's pinned alg), typ JWT, kid; claims iss and aud from the settings (cph_settings_auth), sub (decimal string),
 * sys, roles, groups, su (only when true), iat = nbf = now, exp = now + ttl_s, jti, name. jti comes from
 * cph_token_new_jti (the caller records it with the refresh token before signing). ttl_s is clamped to
 * 1..CPH_ACCESS_TOKEN_MAX_S. Needs no database lock. Returns 0 (release out with cph_token_clear) or -1 with err
 * {internal}.
 */
int cph_token_issue(const cph_signing_new_t *key, const cph_token_claims_t *c, const char *jti, int64_t now, int ttl_s,
                    cph_token_t *out, cph_error_t *err);
/** Frees t's JWT (zeroed t is fine). */
void cph_token_clear(cph_token_t *t);
/**
 * Reads the jti and exp of an access token this control plane signed: the header must name (kid) an active or
 * still-retiring key and carry its alg, the signature must verify with that key's public half, jwt_get_alg must
 * equal the key's alg, and jti must be a string of 1..CPH_TOKEN_JTI_MAX [A-Za-z0-9_-], exp an integer. Issuer,
 * audience and times are not checked (an expired token needs no revocation; the caller compares exp). Lock held
 * (reads the keys). Returns 0, or -1 with err {invalid_token} (never says why in detail) or {internal}.
 */
int cph_token_verify_own(cph_db_t *db, const char *jwt, int64_t now, char jti[CPH_TOKEN_JTI_MAX + 1], int64_t *exp,
                         cph_error_t *err);

#endif
