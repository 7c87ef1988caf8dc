/*
 * authn_issuer_test: external token issuers (body auth.issuers) in core/authn.c, compile/auth.c and the schema.
 *
 * A snapshot with the control plane's own key (ES256 "own1") and two external issuers: "idp-a" (iss
 * https://a.example, RS256 key "ka", EC key "ka-ec", system shop, roles from "realm_access.roles", audience "gw") and
 * "idp-b" (iss https://b.example, EC key "kb", system other). Real tokens signed by libjwt are accepted with the
 * issuer's system and the configured claims; the hostile ones must be refused with their reason: a key of issuer A
 * used under issuer B's iss (and under the own iss), a kid of another issuer, a wrong or missing audience, exp
 * missing or a string, a roles claim that is not an array, su claimed, an iss nobody knows. The schema refuses an
 * issuer with the own iss, private key members, duplicate iss and more than 16 issuers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "dataplane/compile/auth.h"
#include "dataplane/core/authn.h"
#include "jwt_fixture.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define NOW 1790000000

static EVP_PKEY *own_key, *a_rsa, *a_ec, *b_ec;
static char *own_priv, *a_rsa_priv, *a_ec_priv, *b_priv;
static cph_snapshot_t *snap;
static h2o_mem_pool_t pool;

static char *pem_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    assert_non_null(out = strndup(data, (size_t)n));
    BIO_free(bio);
    return out;
}

static void b64url_param(const EVP_PKEY *pkey, const char *name, int pad, char *out)
{
    unsigned char bin[600];
    BIGNUM *bn = NULL;
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    assert_int_equal(BN_bn2binpad(bn, bin, n), n);
    n = EVP_EncodeBlock((unsigned char *)out, bin, n);
    while (n > 0 && out[n - 1] == '=')
        --n;
    out[n] = '\0';
    for (int i = 0; i < n; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    BN_free(bn);
}

static char *jwk_of(const EVP_PKEY *pkey, const char *kid)
{
    char a[800], b[800], *out;

    if (EVP_PKEY_is_a(pkey, "EC")) {
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        assert_true(asprintf(&out,
                             "{\"kid\":\"%s\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\","
                             "\"y\":\"%s\"}",
                             kid, a, b) > 0);
    } else {
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0, a);
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0, b);
        assert_true(asprintf(&out, "{\"kid\":\"%s\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                             kid, a, b) > 0);
    }
    return out;
}

/* The body with auth.issuers = issuers (a JSON text, "" for none); NULL body text when it does not parse. */
static json_t *body_with(const char *issuers)
{
    char *own = jwk_of(own_key, "own1"), *text;
    json_error_t jerr;
    json_t *body;

    assert_true(asprintf(&text,
                         "{\"services\":[],\"routes\":[],\"keys\":[%s],\"auth\":{\"issuer\":\"cephalo\",\"leeway_s\":30%s%s}}", own,
                         issuers[0] != '\0' ? ",\"issuers\":" : "", issuers) > 0);
    if ((body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    free(text), free(own);
    return body;
}

static char *issuers_text(void)
{
    char *ka = jwk_of(a_rsa, "ka"), *kaec = jwk_of(a_ec, "ka-ec"), *kb = jwk_of(b_ec, "kb"), *out;

    assert_true(asprintf(&out,
                         "[{\"name\":\"idp-a\",\"issuer\":\"https://a.example\",\"audience\":\"gw\",\"system\":\"shop\","
                         "\"roles_claim\":\"realm_access.roles\",\"groups_claim\":\"groups\",\"keys\":[%s,%s]},"
                         "{\"name\":\"idp-b\",\"issuer\":\"https://b.example\",\"audience\":null,\"system\":\"other\","
                         "\"roles_claim\":\"https://b.example/roles\",\"groups_claim\":\"grp\",\"keys\":[%s]}]",
                         ka, kaec, kb) > 0);
    free(ka), free(kaec), free(kb);
    return out;
}

/* Claims of issuer A's default token with patch applied (a null member removes the claim), compact. */
static char *claims_with(const char *base, const char *patch)
{
    return jwt_fixture_patch(json_loads(base, 0, NULL), patch);
}

static char *sign(jwt_alg_t alg, const char *key, const char *kid, const char *claims)
{
    return jwt_fixture_sign(alg, key, kid, claims);
}

#define A_CLAIMS                                                                                                                   \
    "{\"iss\":\"https://a.example\",\"aud\":[\"gw\",\"x\"],\"sub\":\"f:3a1b|alice@example.com\",\"exp\":1790000300,"               \
    "\"iat\":1789999990,\"realm_access\":{\"roles\":[\"reader\",\"bad name!\",7,\"writer\"]},\"groups\":[\"staff\"],"              \
    "\"jti\":\"abc-123\",\"sys\":\"evil\",\"su\":true}"
#define B_CLAIMS                                                                                                                   \
    "{\"iss\":\"https://b.example\",\"sub\":\"bob\",\"exp\":1790000300,\"https://b.example/roles\":[\"reader\"],"                  \
    "\"grp\":[\"ops\"]}"

/* Token of issuer A signed with key (kid), claims patched. */
static char *tok_a(jwt_alg_t alg, const char *key, const char *kid, const char *patch)
{
    char *c = claims_with(A_CLAIMS, patch), *t = sign(alg, key, kid, c);

    free(c);
    return t;
}

static const char *verify(const char *tok, cph_principal_t *p)
{
    const char *reason = "unset";
    cph_principal_t dummy;
    cph_authn_result_t res;

    h2o_mem_clear_pool(&pool);
    res = cph_authn_verify_jwt(snap, tok, strlen(tok), NOW, &pool, p != NULL ? p : &dummy, &reason);
    if ((res == CPH_AUTHN_OK) != (reason == NULL))
        fail_msg("result %d disagrees with reason %s", (int)res, reason != NULL ? reason : "(null)");
    return reason != NULL ? reason : "ok";
}

static void expect(char *tok, const char *want, int line)
{
    const char *got = verify(tok, NULL);

    if (strcmp(got, want) != 0)
        fail_msg("line %d: expected %s, got %s", line, want, got);
    free(tok);
}
#define EXPECT(tok, want) expect(tok, want, __LINE__)

static void assert_iov(h2o_iovec_t v, const char *s)
{
    assert_int_equal(v.len, strlen(s));
    assert_memory_equal(v.base, s, v.len);
}

/* ---------------------------------------------------------------- tests */

static void test_valid_external_tokens(void **state)
{
    cph_principal_t p;
    char *tok;

    (void)state;
    assert_int_equal(snap->auth->num_issuers, 2);
    tok = tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{}");
    assert_string_equal(verify(tok, &p), "ok");
    assert_int_equal(p.kind, CPH_PRINCIPAL_USER);
    assert_iov(p.id, "f:3a1b|alice@example.com");
    assert_iov(p.system, "shop");     /* the issuer's, not the token's "sys" */
    assert_int_equal(p.superuser, 0); /* "su" is not read from an external token */
    assert_int_equal(p.num_roles, 2); /* the invalid names are dropped */
    assert_iov(p.roles[0], "reader");
    assert_iov(p.roles[1], "writer");
    assert_int_equal(p.num_groups, 1);
    assert_iov(p.groups[0], "staff");
    assert_iov(p.jti, "abc-123");
    assert_int_equal(p.exp, 1790000300);
    assert_null(p.name.base);
    free(tok);
    /* ES256 key of the same issuer; no roles claim at all; no iat, no jti */
    tok = tok_a(JWT_ALG_ES256, a_ec_priv, "ka-ec", "{\"realm_access\":null,\"iat\":null,\"jti\":null}");
    assert_string_equal(verify(tok, &p), "ok");
    assert_int_equal(p.num_roles, 0);
    assert_null(p.jti.base);
    free(tok);
    /* issuer B: a claim name with dots that is a top-level member, no audience configured */
    tok = sign(JWT_ALG_ES256, b_priv, "kb", B_CLAIMS);
    assert_string_equal(verify(tok, &p), "ok");
    assert_iov(p.system, "other");
    assert_int_equal(p.num_roles, 1);
    assert_iov(p.roles[0], "reader");
    assert_iov(p.groups[0], "ops");
    free(tok);
}

static void test_keys_stay_with_their_issuer(void **state)
{
    char *c;

    (void)state;
    /* issuer A's key under issuer B's iss (kid of A): not among B's keys */
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"iss\":\"https://b.example\"}"), "unknown_kid");
    /* issuer B's kid, signed by A's EC key, under B's iss: B's key does not verify it */
    EXPECT(tok_a(JWT_ALG_ES256, a_ec_priv, "kb", "{\"iss\":\"https://b.example\"}"), "bad_signature");
    /* issuer A's token under the own iss and own claims: A's kid is not one of the control plane's keys */
    c = claims_with(A_CLAIMS, "{\"iss\":\"cephalo\",\"sub\":\"42\",\"sys\":\"shop\",\"roles\":[],\"groups\":[],"
                              "\"nbf\":1789999990,\"jti\":\"0123456789abcdef\",\"su\":true}");
    EXPECT(sign(JWT_ALG_RS256, a_rsa_priv, "ka", c), "unknown_kid");
    /* ... nor does A's key verify under the own kid */
    EXPECT(sign(JWT_ALG_ES256, a_ec_priv, "own1", c), "bad_signature");
    /* the own key is not one of A's */
    EXPECT(tok_a(JWT_ALG_ES256, own_priv, "own1", "{}"), "unknown_kid");
    /* control: the own key with the own claims passes */
    EXPECT(sign(JWT_ALG_ES256, own_priv, "own1", c), "ok");
    free(c);
    /* an iss nobody knows with a kid nobody knows */
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"iss\":\"https://evil.example\"}"), "unknown_issuer");
    /* pinned algs: an ES256 header on A's RSA kid, HS256 keyed with anything */
    EXPECT(tok_a(JWT_ALG_ES256, a_ec_priv, "ka", "{}"), "alg_mismatch");
    EXPECT(tok_a(JWT_ALG_HS256, "secret-secret-secret-secret-1234", "ka", "{}"), "alg_mismatch");
}

static void test_external_claims(void **state)
{
    (void)state;
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"exp\":null}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"exp\":\"1790000300\"}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"exp\":1790000300.5}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"iat\":\"1\"}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"sub\":\"\"}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"sub\":42}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"sub\":\"a\\nb\"}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"realm_access\":{\"roles\":\"reader\"}}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"groups\":{\"a\":1}}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"jti\":\"a b\"}"), "bad_claims");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"aud\":\"other\"}"), "wrong_audience");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"aud\":null}"), "wrong_audience");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"aud\":\"gw\"}"), "ok");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"exp\":1789999970}"), "expired");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"exp\":1789999971}"), "ok"); /* within the 30 s leeway */
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"nbf\":1790000100}"), "not_yet_valid");
    EXPECT(tok_a(JWT_ALG_RS256, a_rsa_priv, "ka", "{\"iat\":1790000031}"), "not_yet_valid");
}

static void test_schema(void **state)
{
    static const struct {
        const char *patch; /* replaces idp-b's member */
        const char *path;
        const char *code;
    } bad[] = {
        {"{\"issuer\":\"cephalo\"}", "/auth/issuers/1/issuer", "invalid"},
        {"{\"issuer\":\"https://a.example\"}", "/auth/issuers/1/issuer", "duplicate"},
        {"{\"name\":\"idp-a\"}", "/auth/issuers/1/name", "duplicate"},
        {"{\"system\":\"Other\"}", "/auth/issuers/1/system", "invalid"},
        {"{\"roles_claim\":\"\"}", "/auth/issuers/1/roles_claim", "invalid"},
        {"{\"extra\":1}", "/auth/issuers/1/extra", "unknown_field"},
        {"{\"keys\":[{\"kid\":\"k\",\"alg\":\"HS256\",\"kty\":\"oct\",\"use\":\"sig\",\"k\":\"c2VjcmV0\"}]}",
         "/auth/issuers/1/keys/0/k", "unknown_field"},
        {"{\"keys\":[{\"kid\":\"k\",\"alg\":\"HS256\",\"kty\":\"oct\",\"use\":\"sig\"}]}", "/auth/issuers/1/keys/0/alg", "invalid"},
    };
    char *iss = issuers_text();
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        json_t *body = body_with(iss), *b = json_array_get(json_object_get(json_object_get(body, "auth"), "issuers"), 1);
        json_t *p = json_loads(bad[i].patch, 0, NULL);
        assert_non_null(p);
        json_object_update(b, p);
        json_decref(p);
        memset(&err, 0, sizeof(err));
        assert_int_equal(cph_snapshot_validate(body, &err), -1);
        if (strcmp(err.path, bad[i].path) != 0 || strcmp(err.code, bad[i].code) != 0)
            fail_msg("case %zu: %s at %s (%s), want %s at %s", i, err.code, err.path, err.msg, bad[i].code, bad[i].path);
        json_decref(body);
    }
    /* a private member on a real key */
    {
        json_t *body = body_with(iss);
        json_t *k = json_array_get(
            json_object_get(json_array_get(json_object_get(json_object_get(body, "auth"), "issuers"), 0), "keys"), 0);
        json_object_set_new(k, "d", json_string("AAAA"));
        memset(&err, 0, sizeof(err));
        assert_int_equal(cph_snapshot_validate(body, &err), -1);
        assert_string_equal(err.path, "/auth/issuers/0/keys/0/d");
        json_decref(body);
    }
    /* 17 issuers */
    {
        json_t *body = body_with("[]"), *list = json_object_get(json_object_get(body, "auth"), "issuers");
        for (int i = 0; i != 17; ++i)
            json_array_append_new(list, json_pack("{s:s, s:s, s:n, s:s, s:s, s:s, s:[]}", "name", "x", "issuer", "y", "audience",
                                                  "system", "s", "roles_claim", "r", "groups_claim", "g", "keys"));
        memset(&err, 0, sizeof(err));
        assert_int_equal(cph_snapshot_validate(body, &err), -1);
        assert_string_equal(err.path, "/auth/issuers");
        json_decref(body);
    }
    free(iss);
}

static int setup(void **state)
{
    char *iss = issuers_text(), hash[CPH_HASH_SIZE] = "";
    json_t *body = body_with(iss);
    cph_error_t err;

    (void)state;
    memset(&err, 0, sizeof(err));
    if (cph_snapshot_validate(body, &err) != 0)
        fail_msg("validate: %s at %s: %s", err.code, err.path, err.msg);
    if ((snap = cph_snapshot_build(body, EPOCH, 1, hash, "cp", &err)) == NULL)
        fail_msg("build: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    free(iss);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cph_snapshot_release(snap);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_external_tokens),
        cmocka_unit_test(test_keys_stay_with_their_issuer),
        cmocka_unit_test(test_external_claims),
        cmocka_unit_test(test_schema),
    };
    int ret;

    own_key = EVP_EC_gen("P-256");
    a_rsa = EVP_RSA_gen(2048);
    a_ec = EVP_EC_gen("P-256");
    b_ec = EVP_EC_gen("P-256");
    if (own_key == NULL || a_rsa == NULL || a_ec == NULL || b_ec == NULL)
        return 1;
    own_priv = pem_of(own_key), a_rsa_priv = pem_of(a_rsa), a_ec_priv = pem_of(a_ec), b_priv = pem_of(b_ec);
    h2o_mem_init_pool(&pool);
    ret = cmocka_run_group_tests(tests, setup, teardown);
    h2o_mem_clear_pool(&pool);
    free(own_priv), free(a_rsa_priv), free(a_ec_priv), free(b_priv);
    EVP_PKEY_free(own_key), EVP_PKEY_free(a_rsa), EVP_PKEY_free(a_ec), EVP_PKEY_free(b_ec);
    return ret;
}
