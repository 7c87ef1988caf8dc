/*
 * auth: the compiled authentication state of one snapshot: the public signing keys (body "keys", proto/PROTOCOL.md
 * section 5), the JWT settings (body "auth"), the usable API keys (body "api_keys") and the revocations (body
 * "revoked"), docs/access.md sections 1-3.
 *
 * What the built-in route GET /auth/.well-known/jwks.json serves (the JWKS document, serialised once at compile
 * time), the kid -> (alg, public key, PEM) table a JWT verifier looks keys up in (the alg is pinned per key, never
 * read from a token), the API keys sorted by prefix and the revoked users and token ids sorted for binary search. The
 * OpenSSL keys are owned by the snapshot and freed with it (cph_auth_dispose); everything else lives in its arena.
 * The optional external issuers (auth.issuers) each carry their own key table, built the same way.
 */
#ifndef CPH_COMPILE_AUTH_H
#define CPH_COMPILE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/types.h>
#include "dataplane/core/snapshot.h"

#define CPH_AUTH_JWKS_PATH "/auth/.well-known/jwks.json"

/* defaults of body "auth" (docs/access.md section 1) */
#define CPH_AUTH_DEFAULT_ISSUER "cephalo"
#define CPH_AUTH_DEFAULT_LEEWAY_S 30
#define CPH_AUTH_DEFAULT_MAX_TOKEN_BYTES 8192
#define CPH_AUTH_DEFAULT_HEADER_PREFIX "x-cephalo-"

typedef struct st_cph_auth_key_t {
    const char *kid; /* 1-64 of [A-Za-z0-9._-] (the validator's name rule) */
    const char *alg; /* "ES256" | "RS256" */
    EVP_PKEY *pkey;  /* the public key (EC P-256 or RSA), never NULL in a built snapshot; read-only after the build */
    h2o_iovec_t pem; /* the same key as a PEM SubjectPublicKeyInfo (NUL-terminated), what libjwt verifies with */
} cph_auth_key_t;

/**
 * An external issuer (body auth.issuers[]): tokens whose "iss" equals issuer are verified with its own keys only and
 * their principal is in system (never a superuser). Views into the arena, NUL-terminated.
 */
typedef struct st_cph_auth_issuer_t {
    h2o_iovec_t name;         /* the issuer's name in the control plane: [A-Za-z0-9._-]{1,64} */
    h2o_iovec_t issuer;       /* the "iss" value, 1-256 printable */
    h2o_iovec_t audience;     /* base NULL: no audience required; else "aud" must contain it */
    h2o_iovec_t system;       /* the system code of every principal of this issuer */
    h2o_iovec_t roles_claim;  /* the claim holding role names (a top-level member, else a dotted path) */
    h2o_iovec_t groups_claim; /* the claim holding group names */
    cph_auth_key_t *keys;     /* its public keys (1-16) with pinned algs */
    size_t num_keys;
} cph_auth_issuer_t;

/** Body "auth" without "api" (compile/builtin.c reads that one); every member filled in, defaults when absent. */
typedef struct st_cph_auth_settings_t {
    h2o_iovec_t issuer;        /* the JWT "iss" must equal it */
    h2o_iovec_t audience;      /* base NULL: no audience required; else "aud" must contain it */
    int64_t leeway_s;          /* clock skew allowed on exp / nbf / iat, 0-300 */
    size_t max_token_bytes;    /* a longer bearer token is refused unread */
    h2o_iovec_t header_prefix; /* lower-case, ends with '-': "x-cephalo-" */
} cph_auth_settings_t;

/** One usable API key (body api_keys[]); views into the arena, NUL-terminated. */
typedef struct st_cph_api_key_t {
    int64_t id;
    h2o_iovec_t id_str; /* id in decimal (the principal's id) */
    h2o_iovec_t prefix; /* [0-9a-f]{8,12} */
    unsigned char secret_sha256[32];
    h2o_iovec_t system;
    h2o_iovec_t *roles; /* names in system */
    size_t num_roles;
    h2o_iovec_t *groups;
    size_t num_groups;
    int64_t expires_at; /* unix seconds; 0 = never */
} cph_api_key_t;

/** A revoked user: its tokens with iat <= before are refused. */
typedef struct st_cph_revoked_user_t {
    int64_t id;
    int64_t before;
} cph_revoked_user_t;

struct st_cph_auth_t {
    h2o_iovec_t jwks; /* {"keys":[...]} compact, in the body's order (sorted by kid); {"keys":[]} when none */
    cph_auth_key_t *keys;
    size_t num_keys;
    cph_auth_settings_t settings;
    cph_api_key_t *api_keys; /* sorted by prefix (bytewise), unique */
    size_t num_api_keys;
    cph_revoked_user_t *revoked_users; /* sorted by id, unique */
    size_t num_revoked_users;
    h2o_iovec_t *revoked_jtis; /* sorted bytewise, unique */
    size_t num_revoked_jtis;
    cph_auth_issuer_t *issuers; /* auth.issuers, in the body's order; at most 16 */
    size_t num_issuers;
};

/** The key of kid (len bytes), or NULL. A linear scan: a snapshot holds at most 16 keys. */
const cph_auth_key_t *cph_auth_find_key(const cph_auth_t *auth, const char *kid, size_t len);
/** The external issuer whose "iss" is iss[0..len), or NULL (a linear scan: at most 16; auth may be NULL). */
const cph_auth_issuer_t *cph_auth_find_issuer(const cph_auth_t *auth, const char *iss, size_t len);
/** The key of kid (len bytes) among issuer's own keys, or NULL. */
const cph_auth_key_t *cph_auth_find_issuer_key(const cph_auth_issuer_t *issuer, const char *kid, size_t len);
/**
 * The public key a JWK in the snapshot's key form (proto/PROTOCOL.md section 5, already validated) stands for, as a
 * new EVP_PKEY (the caller frees it), or NULL when OpenSSL does not accept its numbers as a key (an EC point off
 * the curve). The control plane's JWKS sync uses it too, so it never ships a key the data planes would refuse.
 */
EVP_PKEY *cph_auth_pkey_from_jwk(const json_t *jwk);
/** The API key whose prefix is prefix[0..len), or NULL (binary search; auth may be NULL). */
const cph_api_key_t *cph_auth_find_api_key(const cph_auth_t *auth, const char *prefix, size_t len);
/** Whether a token id is in revoked.tokens (binary search; auth may be NULL). */
int cph_auth_jti_revoked(const cph_auth_t *auth, const char *jti, size_t len);
/** Whether a token of user_id issued at iat is refused by revoked.users (iat <= before; auth may be NULL). */
int cph_auth_user_revoked(const cph_auth_t *auth, int64_t user_id, int64_t iat);
/** The settings of auth, or the defaults when auth is NULL (a snapshot not built by cph_snapshot_build). */
const cph_auth_settings_t *cph_auth_settings(const cph_auth_t *auth);
/** Frees the OpenSSL keys of auth (NULL is fine); the arena holds the rest. Called by the snapshot's last release. */
void cph_auth_dispose(cph_auth_t *auth);

#endif
