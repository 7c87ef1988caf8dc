/*
 * auth: the compiled public signing keys of one snapshot (body "keys", proto/PROTOCOL.md section 5).
 *
 * What the built-in route GET /auth/.well-known/jwks.json serves (the JWKS document, serialised once at compile
 * time) and the kid -> (alg, public key) table a JWT verifier looks keys up in: the alg is pinned per key, never
 * read from a token. The OpenSSL keys are owned by the snapshot and freed with it (cph_auth_dispose).
 */
#ifndef CPH_COMPILE_AUTH_H
#define CPH_COMPILE_AUTH_H

#include <stddef.h>
#include <openssl/types.h>
#include "dataplane/core/snapshot.h"

#define CPH_AUTH_JWKS_PATH "/auth/.well-known/jwks.json"

typedef struct st_cph_auth_key_t {
    const char *kid; /* 1-64 of [A-Za-z0-9._-] (the validator's name rule) */
    const char *alg; /* "ES256" | "RS256" */
    EVP_PKEY *pkey;  /* the public key (EC P-256 or RSA), never NULL in a built snapshot; read-only after the build */
} cph_auth_key_t;

struct st_cph_auth_t {
    h2o_iovec_t jwks; /* {"keys":[...]} compact, in the body's order (sorted by kid); {"keys":[]} when none */
    cph_auth_key_t *keys;
    size_t num_keys;
};

/** The key of kid (len bytes), or NULL. A linear scan: a snapshot holds at most 16 keys. */
const cph_auth_key_t *cph_auth_find_key(const cph_auth_t *auth, const char *kid, size_t len);
/** Frees the OpenSSL keys of auth (NULL is fine); the arena holds the rest. Called by the snapshot's last release. */
void cph_auth_dispose(cph_auth_t *auth);

#endif
