/*
 * signing: the control plane's token-signing keys (migrations/0003_signing_keys.sql) - generation with OpenSSL 3,
 * their public JWKs and the JWKS document, rotation, and the first key of a fresh database.
 *
 * API representation of a key: {"id", "kid", "alg", "state", "created_at", "rotated_at", "retire_after", "jwk"};
 * the private key is never part of it. A retiring key whose retire_after has passed reads as "retired" at once
 * (every read compares with the clock) and is stored as such at the next rotation. Everything that takes a db runs
 * with the database lock held, except cph_signing_ensure() which takes it.
 */
#ifndef CPH_SIGNING_H
#define CPH_SIGNING_H

#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include "controlplane/db.h"

/*
 * The longest lifetime of an access token the control plane will sign. A rotated-out key stays published for this
 * long after it stopped signing, so every token it signed can still be verified until it expires. The login API
 * must never issue a token living longer.
 */
#define CPH_ACCESS_TOKEN_MAX_S 900
#define CPH_SIGNING_KID_BYTES 16 /* random; the kid is their lower-case hex */

/** A freshly generated key pair, before it is stored. */
typedef struct st_cph_signing_new_t {
    char alg[8];                             /* "ES256" | "RS256" */
    char kid[2 * CPH_SIGNING_KID_BYTES + 1]; /* lower-case hex */
    char *public_pem;                        /* "-----BEGIN PUBLIC KEY-----..." */
    char *private_pem;                       /* "-----BEGIN PRIVATE KEY-----..." (PKCS#8) */
    char source[320]; /* "" = the control plane's own; "vault:<path>@<version>" = held in memory, never stored */
} cph_signing_new_t;

/**
 * Generates a key pair for alg ("ES256": EC P-256, "RS256": RSA 2048) and a random kid into *k. Slow for RSA (up to
 * a second): call it without the database lock. err {invalid} at /alg for another alg, {internal} when OpenSSL fails.
 * Returns 0 (release k with cph_signing_new_clear) or -1 (k holds nothing).
 */
int cph_signing_new(const char *alg, cph_signing_new_t *k, cph_error_t *err);
/** Wipes and frees the PEMs of k (zeroed k is fine). */
void cph_signing_new_clear(cph_signing_new_t *k);
/**
 * Checks a rotation request body ({"alg"?: "ES256" | "RS256"}, default ES256) and points *alg at a static string.
 * err {invalid} (not an object), {unknown_field} at /<member>, {invalid} at /alg. Returns 0 or -1.
 */
int cph_signing_rotation_alg(const json_t *body, const char **alg, cph_error_t *err);
/**
 * The public JWK of a PEM public key: {"kty":"EC","crv":"P-256","x","y"} or {"kty":"RSA","n","e"}, plus kid, alg and
 * "use":"sig"; numbers in unpadded base64url (EC coordinates 32 bytes each, RSA unsigned big-endian without leading
 * zeros). NULL with err {internal} when the PEM does not parse or does not match alg.
 */
json_t *cph_signing_jwk(const char *alg, const char *kid, const char *public_pem, cph_error_t *err);

/** Every key, newest first, as of now. NULL with err {internal}. */
json_t *cph_signing_list(cph_db_t *db, time_t now, cph_error_t *err);
/** One key by id (all digits) or kid. NULL with err {not_found} ("no such signing_key") or {internal}. */
json_t *cph_signing_get(cph_db_t *db, const char *key, time_t now, cph_error_t *err);
/** The public JWKS document {"keys": [jwk...]}: the active key first, then the retiring ones as of now, newest first. */
json_t *cph_signing_jwks(cph_db_t *db, time_t now, cph_error_t *err);
/**
 * A cph_db_write step: marks retiring keys past retire_after retired, demotes the active key (if any) to retiring
 * with rotated_at = now and retire_after = now + CPH_ACCESS_TOKEN_MAX_S, and inserts k as the active key. Fills
 * change (action "rotate", or "create" when there was no active key; entity "signing_key"; before = the old active
 * key, after = the new one, both without private key). Returns 0 or -1 with err {internal} (or {conflict} on a kid
 * collision).
 */
int cph_signing_rotate(cph_db_t *db, const cph_signing_new_t *k, time_t now, cph_db_change_t *change, cph_error_t *err);
/**
 * First start: when no key is active, generates an ES256 key and stores it through cph_db_write (audited as
 * actor "system") and logs its kid. Takes the lock. Returns 0 or -1 with err filled.
 */
int cph_signing_ensure(cph_db_t *db, cph_error_t *err);

/**
 * The active key with its private half, for token.c: kid, alg, public_pem and private_pem into *k (release with
 * cph_signing_new_clear, which wipes the private PEM). A key from Vault takes its private half from the one held
 * (cph_signing_hold): err {unavailable} while Vault has not given it since the start. Lock held. err {internal} when
 * none is active or the read fails. Returns 0 or -1 (k holds nothing).
 */
int cph_signing_active(cph_db_t *db, cph_signing_new_t *k, cph_error_t *err);
/**
 * A key read from Vault (sync_vault.c): private_pem is a PEM private key (PKCS#8, or the traditional EC/RSA forms),
 * EC P-256 -> ES256 or RSA of at least 2048 bits -> RS256; kid is the secret's "kid" ([A-Za-z0-9._-]{1,32}) or NULL
 * for the first 16 bytes of the SHA-256 of the public key in hex; source ("vault:<path>@<version>") is copied into
 * k->source, so cph_signing_rotate stores the row without its private half. err {invalid} (never quoting the key).
 * Returns 0 (release k with cph_signing_new_clear) or -1.
 */
int cph_signing_from_pem(const char *private_pem, const char *kid, const char *source, cph_signing_new_t *k, cph_error_t *err);
/**
 * Holds a copy of the private PEM of the key stored with source (process memory only, wiped when replaced), for
 * cph_signing_active; NULL source forgets it. Thread-safe.
 */
void cph_signing_hold(const char *source, const char *private_pem);
/** The active key's source into buf ("" for the control plane's own key or none). Lock held. Returns 0 or -1 {internal}. */
int cph_signing_active_source(cph_db_t *db, char *buf, size_t cap, cph_error_t *err);

/**
 * A key that may still verify tokens - active, or retiring and not past retire_after as of now - by kid: its alg
 * into alg and a new (malloc'd) public PEM into *public_pem. Lock held. err {not_found} (no such usable key) or
 * {internal}. Returns 0 or -1.
 */
int cph_signing_public(cph_db_t *db, const char *kid, time_t now, char alg[8], char **public_pem, cph_error_t *err);

#endif
