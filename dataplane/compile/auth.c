/*
 * compile/auth: body["keys"] -> snap->auth: the JWKS document the data plane serves itself, and per kid the pinned
 * alg and the public key as an OpenSSL EVP_PKEY, built once here so verifying a token never parses a key.
 *
 * The body was validated (proto/schema.c): every key is a public JWK with known members only (so re-serialising the
 * array cannot publish private material), its numbers strict base64url of the right sizes. OpenSSL still decides
 * whether they form a key: an EC point off the curve, say, is refused here with the key's pointer, which NACKs the
 * snapshot. The EVP_PKEYs live outside the arena; cph_auth_dispose frees them with the snapshot, also after a
 * failed build (the table is published into snap->auth before the first key is built).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include "proto/log.h"
#include "dataplane/compile/auth.h"
#include "dataplane/compile/compile.h"

#define MODULE "dp/compile/auth"
#define MAX_NUM_BYTES 512 /* RSA 4096 */

/* Decodes an unpadded base64url member (already validated) into out; returns the length or -1. */
static int decode_member(const json_t *jwk, const char *key, unsigned char out[MAX_NUM_BYTES + 3])
{
    const char *s = json_string_value(json_object_get(jwk, key));
    size_t len = s != NULL ? strlen(s) : 0, i, pad = (4 - len % 4) % 4;
    char b64[4 * (MAX_NUM_BYTES / 3 + 2) + 1];
    int n;

    if (len == 0 || len + pad >= sizeof(b64))
        return -1;
    for (i = 0; i != len; ++i)
        b64[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    memset(b64 + len, '=', pad);
    if ((n = EVP_DecodeBlock(out, (unsigned char *)b64, (int)(len + pad))) < 0 || (size_t)n < pad)
        return -1;
    return n - (int)pad; /* EVP_DecodeBlock counts the bytes '=' stands for */
}

/* Adds the key's public parameters to bld: EC the uncompressed point 04||x||y, RSA n and e. Returns 0 or -1. */
static int add_params(OSSL_PARAM_BLD *bld, const json_t *jwk, int ec, unsigned char *point, BIGNUM **n, BIGNUM **e)
{
    unsigned char a[MAX_NUM_BYTES + 3], b[MAX_NUM_BYTES + 3];
    int la = decode_member(jwk, ec ? "x" : "n", a), lb = decode_member(jwk, ec ? "y" : "e", b);

    if (la <= 0 || lb <= 0)
        return -1;
    if (ec) {
        if (la != 32 || lb != 32)
            return -1;
        point[0] = 0x04;
        memcpy(point + 1, a, 32);
        memcpy(point + 33, b, 32);
        return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
                       OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65) == 1
                   ? 0
                   : -1;
    }
    if ((*n = BN_bin2bn(a, la, NULL)) == NULL || (*e = BN_bin2bn(b, lb, NULL)) == NULL)
        return -1;
    return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, *n) == 1 &&
                   OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, *e) == 1
               ? 0
               : -1;
}

/* The public EVP_PKEY of a validated JWK, or NULL when OpenSSL does not accept it as a key. */
static EVP_PKEY *pkey_from_jwk(const json_t *jwk)
{
    int ec = strcmp(json_string_value(json_object_get(jwk, "kty")), "EC") == 0;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char point[65];

    if (bld == NULL || add_params(bld, jwk, ec, point, &n, &e) != 0 || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* The JWKS document {"keys": body.keys or []}, compact, in the arena. */
static h2o_iovec_t serialise(cph_snapshot_t *snap, const json_t *keys)
{
    /* "o" steals: the body's array gets one more reference, an absent one becomes a fresh empty array */
    json_t *doc = json_pack("{s:o}", "keys", keys != NULL ? json_incref((json_t *)keys) : json_array());
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    h2o_iovec_t out;

    json_decref(doc);
    if (text == NULL)
        cph_fatal(MODULE, "out of memory");
    out = h2o_iovec_init(cph_arena_strdup(&snap->arena, text), strlen(text));
    free(text);
    return out;
}

int cph_auth_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *keys = json_object_get(body, "keys"), *jwk;
    cph_auth_t *auth = cph_arena_alloc(&snap->arena, sizeof(*auth));
    char p[32];
    size_t i;

    if (keys != NULL && !json_is_array(keys))
        return cph_error_set(err, "invalid", "/keys", "keys must be an array");
    auth->jwks = serialise(snap, keys);
    auth->keys = cph_arena_alloc(&snap->arena, (json_array_size(keys) + 1) * sizeof(*auth->keys));
    snap->auth = auth; /* from here on the snapshot's free disposes of every key built */
    json_array_foreach(keys, i, jwk)
    {
        const char *kid = json_string_value(json_object_get(jwk, "kid")), *alg = json_string_value(json_object_get(jwk, "alg"));
        snprintf(p, sizeof(p), "/keys/%zu", i);
        if (kid == NULL || alg == NULL || json_string_value(json_object_get(jwk, "kty")) == NULL)
            return cph_error_set(err, "invalid", p, "a key without kid, alg or kty");
        auth->keys[i] =
            (cph_auth_key_t){cph_arena_strdup(&snap->arena, kid), cph_arena_strdup(&snap->arena, alg), pkey_from_jwk(jwk)};
        auth->num_keys = i + 1;
        if (auth->keys[i].pkey == NULL)
            return cph_error_set(err, "invalid", p, "the key's numbers do not form a valid %s public key", alg);
    }
    return 0;
}

const cph_auth_key_t *cph_auth_find_key(const cph_auth_t *auth, const char *kid, size_t len)
{
    size_t i;

    if (auth == NULL)
        return NULL;
    for (i = 0; i != auth->num_keys; ++i)
        if (strlen(auth->keys[i].kid) == len && memcmp(auth->keys[i].kid, kid, len) == 0)
            return &auth->keys[i];
    return NULL;
}

void cph_auth_dispose(cph_auth_t *auth)
{
    size_t i;

    for (i = 0; auth != NULL && i != auth->num_keys; ++i)
        EVP_PKEY_free(auth->keys[i].pkey);
}
