/*
 * compile/auth: body "keys", "auth", "api_keys" and "revoked" -> snap->auth (compile/auth.h).
 *
 * Keys: the JWKS document the data plane serves itself, and per kid the pinned alg, the public key as an OpenSSL
 * EVP_PKEY and as PEM (what libjwt verifies with), built once here so verifying a token never parses a JWK. The body
 * was validated (proto/schema.c): every key is a public JWK with known members only (so re-serialising the array
 * cannot publish private material), its numbers strict base64url of the right sizes. OpenSSL still decides whether
 * they form a key: an EC point off the curve, say, is refused here with the key's pointer, which NACKs the snapshot.
 * The EVP_PKEYs live outside the arena; cph_auth_dispose frees them with the snapshot, also after a failed build
 * (the table is published into snap->auth before the first key is built).
 *
 * External issuers (auth.issuers): each its iss, audience, system, claim names and its own key table, built as the
 * top-level keys; an iss equal to the own issuer or to another issuer's is refused.
 *
 * Settings, API keys and revocations: read with the defaults of docs/access.md section 1 for absent members, re-checked
 * here although the validator ran (a compiler that trusts nothing cannot be made to index out of bounds), and sorted
 * here whatever order the body has, so the per-request lookups are binary searches over the arena.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "proto/log.h"
#include "proto/proto.h"
#include "dataplane/compile/auth.h"
#include "dataplane/compile/compile.h"

#define MODULE "dp/compile/auth"
#define MAX_NUM_BYTES 512 /* RSA 4096 */
#define MAX_NAMES 1024    /* roles / groups of one API key (the validator allows 256) */
#define MAX_JTI 128
#define MAX_SECRET_HEX 64

/* Decodes a strict unpadded base64url member (validated already, see proto/schema.c) into out; the length or -1. */
static long decode_member(const json_t *jwk, const char *key, unsigned char out[MAX_NUM_BYTES])
{
    const json_t *v = json_object_get(jwk, key);

    return json_is_string(v) ? cph_b64url_decode(json_string_value(v), json_string_length(v), out, MAX_NUM_BYTES) : -1;
}

/* Adds the key's public parameters to bld: EC the uncompressed point 04||x||y, RSA n and e. Returns 0 or -1. */
static int add_params(OSSL_PARAM_BLD *bld, const json_t *jwk, int ec, unsigned char *point, BIGNUM **n, BIGNUM **e)
{
    unsigned char a[MAX_NUM_BYTES], b[MAX_NUM_BYTES];
    long la = decode_member(jwk, ec ? "x" : "n", a), lb = decode_member(jwk, ec ? "y" : "e", b);

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
    if ((*n = BN_bin2bn(a, (int)la, NULL)) == NULL || (*e = BN_bin2bn(b, (int)lb, NULL)) == NULL)
        return -1;
    return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, *n) == 1 &&
                   OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, *e) == 1
               ? 0
               : -1;
}

EVP_PKEY *cph_auth_pkey_from_jwk(const json_t *jwk)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    int ec = kty != NULL && strcmp(kty, "EC") == 0;
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

/* The key as PEM SubjectPublicKeyInfo in the arena (what libjwt reads), or an empty iovec when OpenSSL fails. */
static h2o_iovec_t pem_of(cph_snapshot_t *snap, EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    h2o_iovec_t out = {NULL, 0};
    char *data;
    long n;

    if (bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0)
        out = h2o_iovec_init(cph_arena_strndup(&snap->arena, data, (size_t)n), (size_t)n);
    BIO_free(bio);
    return out;
}

/* keys (a JSON array at base) -> out[0..*num): *num counts every key built, so a failure still frees them all. */
static int compile_keys(cph_snapshot_t *snap, cph_auth_key_t *out, size_t *num, const json_t *keys, const char *base,
                        cph_error_t *err)
{
    const json_t *jwk;
    char p[96];
    size_t i;

    json_array_foreach(keys, i, jwk)
    {
        const char *kid = json_string_value(json_object_get(jwk, "kid")), *alg = json_string_value(json_object_get(jwk, "alg"));
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        snprintf(p, sizeof(p), "%s/%zu", base, i);
        if (kid == NULL || alg == NULL || kty == NULL)
            return cph_error_set(err, "invalid", p, "a key without kid, alg or kty");
        if (!(strcmp(alg, "ES256") == 0 && strcmp(kty, "EC") == 0) && !(strcmp(alg, "RS256") == 0 && strcmp(kty, "RSA") == 0))
            return cph_error_set(err, "invalid", p, "a key's alg must be ES256 (kty EC) or RS256 (kty RSA)");
        out[i] = (cph_auth_key_t){
            cph_arena_strdup(&snap->arena, kid), cph_arena_strdup(&snap->arena, alg), cph_auth_pkey_from_jwk(jwk), {NULL, 0}};
        *num = i + 1;
        if (out[i].pkey == NULL)
            return cph_error_set(err, "invalid", p, "the key's numbers do not form a valid %s public key", alg);
        if ((out[i].pem = pem_of(snap, out[i].pkey)).len == 0)
            return cph_error_set(err, "invalid", p, "the key cannot be written as PEM");
    }
    return 0;
}

/* ---------------------------------------------------------------- syntax */

static int is_code_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int is_jti_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int is_prefix_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

static int is_header_prefix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static int is_printable(char c)
{
    return c >= 0x20 && c < 0x7f;
}

/* Whether s (NUL-terminated) has min..max bytes, each accepted by ok. */
static int valid_chars(const char *s, size_t min, size_t max, int (*ok)(char))
{
    size_t len = s != NULL ? strlen(s) : 0, i;

    if (len < min || len > max)
        return 0;
    for (i = 0; i != len; ++i)
        if (!ok(s[i]))
            return 0;
    return 1;
}

/* member name of obj as a string matching (min, max, ok) copied to the arena; an absent member leaves *out. */
static int get_string(cph_snapshot_t *snap, const json_t *obj, const char *name, const char *base, size_t min, size_t max,
                      int (*ok)(char), h2o_iovec_t *out, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, name);
    char p[96];

    if (v == NULL)
        return 0;
    snprintf(p, sizeof(p), "%s/%s", base, name);
    if (!valid_chars(json_string_value(v), min, max, ok))
        return cph_error_set(err, "invalid", p, "%s must be a string of %zu-%zu allowed characters", name, min, max);
    *out = h2o_iovec_init(cph_arena_strdup(&snap->arena, json_string_value(v)), strlen(json_string_value(v)));
    return 0;
}

/* member name of obj as an integer in [min, max]; an absent member leaves *out. */
static int get_int(const json_t *obj, const char *name, const char *base, int64_t min, int64_t max, int64_t *out, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, name);
    char p[96];

    if (v == NULL)
        return 0;
    snprintf(p, sizeof(p), "%s/%s", base, name);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return cph_error_set(err, "invalid", p, "%s must be an integer in %lld..%lld", name, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

/* ---------------------------------------------------------------- body "auth" */

static int compile_settings(cph_snapshot_t *snap, const json_t *body, cph_auth_settings_t *s, cph_error_t *err)
{
    const json_t *a = json_object_get(body, "auth"), *aud;
    int64_t leeway = CPH_AUTH_DEFAULT_LEEWAY_S, max_bytes = CPH_AUTH_DEFAULT_MAX_TOKEN_BYTES;

    *s = (cph_auth_settings_t){h2o_iovec_init(H2O_STRLIT(CPH_AUTH_DEFAULT_ISSUER)),
                               {NULL, 0},
                               CPH_AUTH_DEFAULT_LEEWAY_S,
                               CPH_AUTH_DEFAULT_MAX_TOKEN_BYTES,
                               h2o_iovec_init(H2O_STRLIT(CPH_AUTH_DEFAULT_HEADER_PREFIX))};
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_object(a))
        return cph_error_set(err, "invalid", "/auth", "auth must be an object");
    if (get_string(snap, a, "issuer", "/auth", 1, 256, is_printable, &s->issuer, err) != 0 ||
        get_int(a, "leeway_s", "/auth", 0, 300, &leeway, err) != 0 ||
        get_int(a, "max_token_bytes", "/auth", 256, 65536, &max_bytes, err) != 0 ||
        get_string(snap, a, "header_prefix", "/auth", 2, 32, is_header_prefix_char, &s->header_prefix, err) != 0)
        return -1;
    if (s->header_prefix.base[s->header_prefix.len - 1] != '-')
        return cph_error_set(err, "invalid", "/auth/header_prefix", "header_prefix must end with '-'");
    if ((aud = json_object_get(a, "audience")) != NULL && !json_is_null(aud) &&
        get_string(snap, a, "audience", "/auth", 1, 256, is_printable, &s->audience, err) != 0)
        return -1;
    s->leeway_s = leeway;
    s->max_token_bytes = (size_t)max_bytes;
    return 0;
}

/* ---------------------------------------------------------------- body "auth.issuers" */

static int compile_issuer(cph_snapshot_t *snap, const json_t *j, const char *p, cph_auth_issuer_t *is, cph_error_t *err)
{
    const json_t *keys = json_object_get(j, "keys"), *aud = json_object_get(j, "audience");
    char kp[96];

    if (!json_is_object(j))
        return cph_error_set(err, "invalid", p, "an issuer must be an object");
    if (get_string(snap, j, "name", p, 1, 64, is_name_char, &is->name, err) != 0 ||
        get_string(snap, j, "issuer", p, 1, 256, is_printable, &is->issuer, err) != 0 ||
        get_string(snap, j, "system", p, 1, 64, is_code_char, &is->system, err) != 0 ||
        get_string(snap, j, "roles_claim", p, 1, 256, is_printable, &is->roles_claim, err) != 0 ||
        get_string(snap, j, "groups_claim", p, 1, 256, is_printable, &is->groups_claim, err) != 0 ||
        (aud != NULL && !json_is_null(aud) && get_string(snap, j, "audience", p, 1, 256, is_printable, &is->audience, err) != 0))
        return -1;
    if (is->name.base == NULL || is->issuer.base == NULL || is->system.base == NULL)
        return cph_error_set(err, "invalid", p, "an issuer needs name, issuer and system");
    if (is->roles_claim.base == NULL)
        is->roles_claim = h2o_iovec_init(H2O_STRLIT("roles"));
    if (is->groups_claim.base == NULL)
        is->groups_claim = h2o_iovec_init(H2O_STRLIT("groups"));
    snprintf(kp, sizeof(kp), "%s/keys", p);
    if (!json_is_array(keys) || json_array_size(keys) > 16)
        return cph_error_set(err, "invalid", kp, "an issuer's keys must be an array of at most 16 keys");
    is->keys = cph_arena_alloc(&snap->arena, (json_array_size(keys) + 1) * sizeof(*is->keys));
    return compile_keys(snap, is->keys, &is->num_keys, keys, kp, err);
}

static int compile_issuers(cph_snapshot_t *snap, cph_auth_t *auth, const json_t *body, cph_error_t *err)
{
    const json_t *arr = json_object_get(json_object_get(body, "auth"), "issuers"), *j;
    char p[48];
    size_t i;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > 16)
        return cph_error_set(err, "invalid", "/auth/issuers", "auth.issuers must be an array of at most 16 issuers");
    auth->issuers = cph_arena_alloc(&snap->arena, (json_array_size(arr) + 1) * sizeof(*auth->issuers));
    memset(auth->issuers, 0, (json_array_size(arr) + 1) * sizeof(*auth->issuers));
    json_array_foreach(arr, i, j)
    {
        snprintf(p, sizeof(p), "/auth/issuers/%zu", i);
        auth->num_issuers = i + 1; /* before its keys are built: the dispose frees whatever was */
        if (compile_issuer(snap, j, p, &auth->issuers[i], err) != 0)
            return -1;
        if (h2o_memis(auth->issuers[i].issuer.base, auth->issuers[i].issuer.len, auth->settings.issuer.base,
                      auth->settings.issuer.len))
            return cph_error_set(err, "invalid", p, "an external issuer cannot be auth.issuer");
        for (size_t k = 0; k != i; ++k)
            if (h2o_memis(auth->issuers[k].issuer.base, auth->issuers[k].issuer.len, auth->issuers[i].issuer.base,
                          auth->issuers[i].issuer.len))
                return cph_error_set(err, "duplicate", p, "two issuers share one iss");
    }
    return 0;
}

/* ---------------------------------------------------------------- body "api_keys" */

static int iov_cmp(const h2o_iovec_t *a, const h2o_iovec_t *b)
{
    int c = memcmp(a->base, b->base, a->len < b->len ? a->len : b->len);

    return c != 0 ? c : a->len < b->len ? -1 : a->len > b->len;
}

static int api_key_cmp(const void *a, const void *b)
{
    return iov_cmp(&((const cph_api_key_t *)a)->prefix, &((const cph_api_key_t *)b)->prefix);
}

static int jti_cmp(const void *a, const void *b)
{
    return iov_cmp(a, b);
}

static int user_cmp(const void *a, const void *b)
{
    int64_t x = ((const cph_revoked_user_t *)a)->id, y = ((const cph_revoked_user_t *)b)->id;

    return x < y ? -1 : x > y;
}

/* obj[name]: an array of names ([A-Za-z0-9_.-]{1,64}) -> arena views; absent = none. */
static int get_names(cph_snapshot_t *snap, const json_t *obj, const char *name, const char *base, h2o_iovec_t **out, size_t *num,
                     cph_error_t *err)
{
    const json_t *arr = json_object_get(obj, name), *v;
    char p[96];
    size_t i;

    *num = 0;
    if (arr == NULL)
        return 0;
    snprintf(p, sizeof(p), "%s/%s", base, name);
    if (!json_is_array(arr) || json_array_size(arr) > MAX_NAMES)
        return cph_error_set(err, "invalid", p, "%s must be an array of at most %d names", name, MAX_NAMES);
    *out = cph_arena_alloc(&snap->arena, (json_array_size(arr) + 1) * sizeof(**out));
    json_array_foreach(arr, i, v)
    {
        if (!valid_chars(json_string_value(v), 1, 64, is_name_char)) {
            cph_jsonptr_append_index(p, sizeof(p), i);
            return cph_error_set(err, "invalid", p, "a name must be 1-64 of [A-Za-z0-9_.-]");
        }
        (*out)[i] = h2o_iovec_init(cph_arena_strdup(&snap->arena, json_string_value(v)), strlen(json_string_value(v)));
    }
    *num = i;
    return 0;
}

/* 64 lower-case hex digits -> 32 bytes; 0 or -1. */
static int unhex(const char *s, unsigned char out[32])
{
    size_t i;

    if (!valid_chars(s, MAX_SECRET_HEX, MAX_SECRET_HEX, is_prefix_char))
        return -1;
    for (i = 0; i != 32; ++i) {
        int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10,
            lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int compile_api_key(cph_snapshot_t *snap, const json_t *j, const char *p, cph_api_key_t *k, cph_error_t *err)
{
    const json_t *exp = json_object_get(j, "expires_at");
    char sp[96], idbuf[24];
    int64_t expires_at = 0;

    k->id = 0;
    if (!json_is_object(j))
        return cph_error_set(err, "invalid", p, "an API key must be an object");
    if (get_int(j, "id", p, 1, INT64_MAX, &k->id, err) != 0 ||
        get_string(snap, j, "prefix", p, 8, 12, is_prefix_char, &k->prefix, err) != 0 ||
        get_string(snap, j, "system", p, 1, 64, is_code_char, &k->system, err) != 0 ||
        get_names(snap, j, "roles", p, &k->roles, &k->num_roles, err) != 0 ||
        get_names(snap, j, "groups", p, &k->groups, &k->num_groups, err) != 0)
        return -1;
    if (k->id == 0 || k->prefix.base == NULL || k->system.base == NULL)
        return cph_error_set(err, "invalid", p, "an API key needs id, prefix and system");
    snprintf(sp, sizeof(sp), "%s/secret_sha256", p);
    if (unhex(json_string_value(json_object_get(j, "secret_sha256")), k->secret_sha256) != 0)
        return cph_error_set(err, "invalid", sp, "secret_sha256 must be 64 lower-case hex digits");
    if (exp != NULL && !json_is_null(exp) && get_int(j, "expires_at", p, 0, INT64_MAX, &expires_at, err) != 0)
        return -1;
    k->expires_at = exp != NULL && !json_is_null(exp) && expires_at < 1 ? 1 : expires_at; /* 0 means never */
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)k->id);
    k->id_str = h2o_iovec_init(cph_arena_strdup(&snap->arena, idbuf), strlen(idbuf));
    return 0;
}

static int compile_api_keys(cph_snapshot_t *snap, cph_auth_t *auth, const json_t *body, cph_error_t *err)
{
    const json_t *arr = json_object_get(body, "api_keys"), *j;
    char p[48];
    size_t i;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return cph_error_set(err, "invalid", "/api_keys", "api_keys must be an array");
    auth->api_keys = cph_arena_alloc(&snap->arena, (json_array_size(arr) + 1) * sizeof(*auth->api_keys));
    json_array_foreach(arr, i, j)
    {
        snprintf(p, sizeof(p), "/api_keys/%zu", i);
        if (compile_api_key(snap, j, p, &auth->api_keys[i], err) != 0)
            return -1;
    }
    auth->num_api_keys = i;
    qsort(auth->api_keys, auth->num_api_keys, sizeof(*auth->api_keys), api_key_cmp);
    for (i = 1; i < auth->num_api_keys; ++i)
        if (api_key_cmp(&auth->api_keys[i - 1], &auth->api_keys[i]) == 0)
            return cph_error_set(err, "duplicate", "/api_keys", "two API keys share the prefix %s", auth->api_keys[i].prefix.base);
    return 0;
}

/* ---------------------------------------------------------------- body "revoked" */

static int compile_revoked_users(cph_auth_t *auth, cph_arena_t *arena, const json_t *arr, cph_error_t *err)
{
    const json_t *j;
    char p[48];
    size_t i;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return cph_error_set(err, "invalid", "/revoked/users", "revoked.users must be an array");
    auth->revoked_users = cph_arena_alloc(arena, (json_array_size(arr) + 1) * sizeof(*auth->revoked_users));
    json_array_foreach(arr, i, j)
    {
        cph_revoked_user_t *u = &auth->revoked_users[i];
        snprintf(p, sizeof(p), "/revoked/users/%zu", i);
        *u = (cph_revoked_user_t){0, -1};
        if (!json_is_object(j))
            return cph_error_set(err, "invalid", p, "a revoked user must be an object");
        if (get_int(j, "id", p, 1, INT64_MAX, &u->id, err) != 0 || get_int(j, "before", p, 0, INT64_MAX, &u->before, err) != 0)
            return -1;
        if (u->id == 0 || u->before < 0)
            return cph_error_set(err, "invalid", p, "a revoked user needs id and before");
    }
    auth->num_revoked_users = i;
    qsort(auth->revoked_users, i, sizeof(*auth->revoked_users), user_cmp);
    for (i = 1; i < auth->num_revoked_users; ++i)
        if (auth->revoked_users[i - 1].id == auth->revoked_users[i].id)
            return cph_error_set(err, "duplicate", "/revoked/users", "user %lld is listed twice",
                                 (long long)auth->revoked_users[i].id);
    return 0;
}

static int compile_revoked_tokens(cph_auth_t *auth, cph_arena_t *arena, const json_t *arr, cph_error_t *err)
{
    const json_t *j;
    char p[48];
    size_t i;

    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return cph_error_set(err, "invalid", "/revoked/tokens", "revoked.tokens must be an array");
    auth->revoked_jtis = cph_arena_alloc(arena, (json_array_size(arr) + 1) * sizeof(*auth->revoked_jtis));
    json_array_foreach(arr, i, j)
    {
        const char *jti = json_string_value(json_object_get(j, "jti"));
        snprintf(p, sizeof(p), "/revoked/tokens/%zu/jti", i);
        if (!valid_chars(jti, 1, MAX_JTI, is_jti_char))
            return cph_error_set(err, "invalid", p, "jti must be 1-%d of [A-Za-z0-9_-]", MAX_JTI);
        auth->revoked_jtis[i] = h2o_iovec_init(cph_arena_strdup(arena, jti), strlen(jti));
    }
    auth->num_revoked_jtis = i;
    qsort(auth->revoked_jtis, i, sizeof(*auth->revoked_jtis), jti_cmp);
    for (i = 1; i < auth->num_revoked_jtis; ++i)
        if (jti_cmp(&auth->revoked_jtis[i - 1], &auth->revoked_jtis[i]) == 0)
            return cph_error_set(err, "duplicate", "/revoked/tokens", "a jti is listed twice");
    return 0;
}

static int compile_revoked(cph_snapshot_t *snap, cph_auth_t *auth, const json_t *body, cph_error_t *err)
{
    const json_t *rev = json_object_get(body, "revoked");

    if (rev == NULL || json_is_null(rev))
        return 0;
    if (!json_is_object(rev))
        return cph_error_set(err, "invalid", "/revoked", "revoked must be an object");
    return compile_revoked_users(auth, &snap->arena, json_object_get(rev, "users"), err) != 0 ||
                   compile_revoked_tokens(auth, &snap->arena, json_object_get(rev, "tokens"), err) != 0
               ? -1
               : 0;
}

/* ---------------------------------------------------------------- entry points */

int cph_auth_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *keys = json_object_get(body, "keys");
    cph_auth_t *auth = cph_arena_alloc(&snap->arena, sizeof(*auth));

    if (keys != NULL && !json_is_array(keys))
        return cph_error_set(err, "invalid", "/keys", "keys must be an array");
    auth->jwks = serialise(snap, keys);
    auth->keys = cph_arena_alloc(&snap->arena, (json_array_size(keys) + 1) * sizeof(*auth->keys));
    snap->auth = auth; /* from here on the snapshot's free disposes of every key built */
    if (compile_keys(snap, auth->keys, &auth->num_keys, keys, "/keys", err) != 0 ||
        compile_settings(snap, body, &auth->settings, err) != 0 || compile_issuers(snap, auth, body, err) != 0 ||
        compile_api_keys(snap, auth, body, err) != 0 || compile_revoked(snap, auth, body, err) != 0)
        return -1;
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

const cph_auth_issuer_t *cph_auth_find_issuer(const cph_auth_t *auth, const char *iss, size_t len)
{
    size_t i;

    for (i = 0; auth != NULL && i != auth->num_issuers; ++i)
        if (h2o_memis(auth->issuers[i].issuer.base, auth->issuers[i].issuer.len, iss, len))
            return &auth->issuers[i];
    return NULL;
}

const cph_auth_key_t *cph_auth_find_issuer_key(const cph_auth_issuer_t *issuer, const char *kid, size_t len)
{
    size_t i;

    for (i = 0; issuer != NULL && i != issuer->num_keys; ++i)
        if (strlen(issuer->keys[i].kid) == len && memcmp(issuer->keys[i].kid, kid, len) == 0)
            return &issuer->keys[i];
    return NULL;
}

const cph_api_key_t *cph_auth_find_api_key(const cph_auth_t *auth, const char *prefix, size_t len)
{
    cph_api_key_t needle = {.prefix = h2o_iovec_init(prefix, len)};

    if (auth == NULL || auth->num_api_keys == 0)
        return NULL;
    return bsearch(&needle, auth->api_keys, auth->num_api_keys, sizeof(*auth->api_keys), api_key_cmp);
}

int cph_auth_jti_revoked(const cph_auth_t *auth, const char *jti, size_t len)
{
    h2o_iovec_t needle = h2o_iovec_init(jti, len);

    return auth != NULL && auth->num_revoked_jtis != 0 &&
           bsearch(&needle, auth->revoked_jtis, auth->num_revoked_jtis, sizeof(*auth->revoked_jtis), jti_cmp) != NULL;
}

int cph_auth_user_revoked(const cph_auth_t *auth, int64_t user_id, int64_t iat)
{
    cph_revoked_user_t needle = {user_id, 0};
    const cph_revoked_user_t *u;

    if (auth == NULL || auth->num_revoked_users == 0)
        return 0;
    u = bsearch(&needle, auth->revoked_users, auth->num_revoked_users, sizeof(*auth->revoked_users), user_cmp);
    return u != NULL && iat <= u->before;
}

const cph_auth_settings_t *cph_auth_settings(const cph_auth_t *auth)
{
    static const cph_auth_settings_t defaults = {
        {(char *)CPH_AUTH_DEFAULT_ISSUER, sizeof(CPH_AUTH_DEFAULT_ISSUER) - 1},
        {NULL, 0},
        CPH_AUTH_DEFAULT_LEEWAY_S,
        CPH_AUTH_DEFAULT_MAX_TOKEN_BYTES,
        {(char *)CPH_AUTH_DEFAULT_HEADER_PREFIX, sizeof(CPH_AUTH_DEFAULT_HEADER_PREFIX) - 1}};

    return auth != NULL ? &auth->settings : &defaults;
}

void cph_auth_dispose(cph_auth_t *auth)
{
    size_t i;

    for (i = 0; auth != NULL && i != auth->num_keys; ++i)
        EVP_PKEY_free(auth->keys[i].pkey);
    for (i = 0; auth != NULL && i != auth->num_issuers; ++i)
        for (size_t k = 0; k != auth->issuers[i].num_keys; ++k)
            EVP_PKEY_free(auth->issuers[i].keys[k].pkey);
}
