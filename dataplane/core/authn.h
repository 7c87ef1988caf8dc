/*
 * authn: checks a credential against one snapshot and turns it into a principal (core/principal.h). Used by
 * filter/authn.c on every request and by the control plane's explain API, so both decide with the same code.
 *
 * JWTs are verified with libjwt using the key of the token's kid from the snapshot and that key's pinned algorithm
 * (docs/access.md section 2); API keys by prefix lookup and a constant-time compare of SHA-256(secret)
 * (section C). Nothing here blocks or logs a credential.
 */
#ifndef CPH_CORE_AUTHN_H
#define CPH_CORE_AUTHN_H

#include <time.h>
#include "dataplane/core/principal.h"
#include "dataplane/core/snapshot.h"

typedef enum en_cph_authn_result_t {
    CPH_AUTHN_OK = 0,
    CPH_AUTHN_INVALID /* the credential is refused: 401 */
} cph_authn_result_t;

/**
 * Verifies a bearer token (the bytes after "Bearer ", not NUL-terminated) against snap at time now (the caller's
 * clock: tests and explain pass a fixed one). Refused unread when len > auth.max_token_bytes. On CPH_AUTHN_OK fills
 * *out (kind USER; id, name, system, roles, groups and jti copied into pool) and sets *reason to NULL; on
 * CPH_AUTHN_INVALID leaves *out alone and sets *reason to a static code for logs, metrics and explain, never
 * echoing the token:
 *   "too_large"      longer than max_token_bytes
 *   "malformed"      not three non-empty base64url segments, header or claims not a strict JSON object (duplicate
 *                    names refused), header without string alg and kid, with crit, or typ other than "JWT"
 *   "alg_mismatch"   alg "none" in any case, or not the alg pinned to the kid's key (before and after libjwt)
 *   "unknown_kid"    the kid is not in the snapshot's keys
 *   "bad_signature"  libjwt refused the signature (always given the key's PEM, never NULL)
 *   "bad_claims"     sub not decimal digits, sys not a system code, roles / groups not arrays of names, su not a
 *                    bool, jti not [A-Za-z0-9_-]{1,128}, name not a string, aud neither string nor array of strings,
 *                    iat / nbf / exp missing or not integers in 0..253402300799 (a string or a real is refused)
 *   "wrong_issuer"   iss is not auth.issuer
 *   "wrong_audience" auth.audience is set and aud does not contain it
 *   "expired"        exp <= now - leeway
 *   "not_yet_valid"  iat or nbf > now + leeway
 *   "revoked"        jti in revoked.tokens, or sub in revoked.users with iat <= before
 *   "unknown_issuer" the kid is not in the snapshot's keys and iss is a string naming neither auth.issuer nor an
 *                    external issuer
 * A token whose iss equals an external issuer's (auth.issuers) is checked against that issuer only: "unknown_kid" /
 * "alg_mismatch" / "bad_signature" with its own keys, "bad_claims" (exp missing or not an integer, iat / nbf not
 * integers when present, sub not 1-256 printable ASCII, jti present and not [A-Za-z0-9_-]{1,128}, aud malformed, the
 * roles or groups claim present and not an array of at most 1024), "wrong_audience" (the issuer's audience),
 * "expired", "not_yet_valid", "revoked" (jti only). Its principal: kind USER, id = sub, no name, system = the
 * issuer's, roles / groups the valid names of the configured claims, never a superuser.
 * snap->auth NULL behaves as a snapshot without keys (every token "unknown_kid" or earlier). Thread-safe.
 */
cph_authn_result_t cph_authn_verify_jwt(const cph_snapshot_t *snap, const char *token, size_t len, time_t now, h2o_mem_pool_t *pool,
                                        cph_principal_t *out, const char **reason);

/**
 * Verifies an API key "<prefix>.<secret>" (secret NULL: split at the first '.'), or, for Basic, prefix and secret
 * given apart (key = the prefix, secret != NULL), at time now. On CPH_AUTHN_OK fills *out (kind API_KEY, id the
 * key's id in decimal, name its prefix, system / roles / groups: views into the snapshot's arena, exp its
 * expires_at or 0) and sets *reason to NULL; else *reason is "malformed" (no '.', prefix not [0-9a-f]{8,12}, empty
 * or > 512-byte secret), "unknown_key", "bad_secret" (SHA-256 compared with CRYPTO_memcmp) or "expired" (now >=
 * expires_at; told only after the secret matched). Thread-safe, no allocation.
 */
cph_authn_result_t cph_authn_verify_api_key(const cph_snapshot_t *snap, const char *key, size_t len, const char *secret,
                                            size_t secret_len, time_t now, cph_principal_t *out, const char **reason);

#endif
