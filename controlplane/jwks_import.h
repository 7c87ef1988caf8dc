/*
 * jwks_import: an external issuer's JWKS document (RFC 7517, as an OIDC provider serves it) -> the public keys in the
 * snapshot's key form (proto/PROTOCOL.md section 5, "key"), for sync_jwks.c. Pure: no I/O, no lock.
 */
#ifndef CPH_JWKS_IMPORT_H
#define CPH_JWKS_IMPORT_H

#include <stddef.h>
#include <jansson.h>

#define CPH_JWKS_DOC_MAX (256 * 1024) /* bytes of a JWKS document */
#define CPH_JWKS_KEYS_MAX 16          /* keys kept per issuer (the snapshot's cap) */

/**
 * Converts doc[0..len) ({"keys": [...]}: strict JSON, duplicate names refused, at most CPH_JWKS_DOC_MAX bytes and 256
 * keys) into *keys, a new array of at most CPH_JWKS_KEYS_MAX keys sorted by kid. Only signing keys are kept: "use"
 * absent or "sig"; "kid" 1-64 of [A-Za-z0-9._-]; "kty" RSA with n of 2048-4096 bits and an odd e >= 3 of at most 4
 * bytes, or EC on P-256 (x, y 32 bytes); "alg" absent (RS256 for RSA, ES256 for EC is assumed) or exactly that one
 * - never an HMAC, "none", another curve or another RSA padding - and numbers OpenSSL builds a public key from.
 * Everything else is dropped key by key, as is every key whose kid is used twice; private members (d, p, q, ...) are
 * never copied: each key is rebuilt from its public numbers, re-encoded as strict unpadded base64url (leading zero
 * bytes of n and e stripped). Returns 0, or -1 with why (a short text without key material, for last_error) when
 * the document is unreadable or no key is left.
 */
int cph_jwks_import(const char *doc, size_t len, json_t **keys, char *why, size_t why_cap);

#endif
