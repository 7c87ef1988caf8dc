/*
 * authn_test: core/authn.c (JWTs and API keys) and filter/authn.c (finding the credential in the headers), on
 * snapshots built by cph_snapshot_build from bodies as the control plane writes them.
 *
 * Real keys (EC P-256 and RSA 2048, OpenSSL) and real tokens signed by libjwt are accepted; the hostile cases are
 * tokens libjwt would be tricked by (alg none in every spelling, HS256 keyed with the RSA public key's PEM - shown to
 * fool libjwt alone -, an ES256 header on an RSA kid), tokens with wrong claims (times as strings or reals, outside
 * the leeway on either side by one second, wrong issuer or audience, revoked) and hand-built garbage (bad base64,
 * two or four segments, empty segments, duplicate claim names under a valid signature). Each must be refused with
 * its reason. The filter is run on a bare h2o_req_t; h2o_send_inline is replaced here so the 401 it answers can be
 * inspected (status, WWW-Authenticate, body).
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
#include <openssl/sha.h>
#include "dataplane/compile/auth.h"
#include "dataplane/core/authn.h"
#include "dataplane/filter/filter.h"
#include "jwt_fixture.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define NOW 1790000000
#define JTI "0123456789abcdef0123456789abcdef"
#define REVOKED_JTI "fedcba9876543210fedcba9876543210"
#define SECRET "s3cr3t-Value_42"
#define XSTR(x) STR(x)
#define STR(x) #x

static EVP_PKEY *ec_key, *rsa_key, *other_ec_key;
static char *ec_priv, *rsa_priv, *other_priv, *rsa_pub;
static cph_snapshot_t *snap, *aud_snap;
static h2o_mem_pool_t pool;

/* ---------------------------------------------------------------- keys, bodies, tokens */

static char *pem_of(EVP_PKEY *pkey, int private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_int_equal(private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, pkey), 1);
    n = BIO_get_mem_data(bio, &data);
    assert_non_null(out = strndup(data, (size_t)n));
    BIO_free(bio);
    return out;
}

static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

    while (n > 0 && out[n - 1] == '=')
        --n;
    out[n] = '\0';
    for (int i = 0; i < n; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static void b64url_param(const EVP_PKEY *pkey, const char *name, int pad, char *out)
{
    unsigned char bin[600];
    BIGNUM *bn = NULL;
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    assert_int_equal(BN_bn2binpad(bn, bin, n), n);
    b64url(bin, (size_t)n, out);
    BN_free(bn);
}

static char *jwk_of(const EVP_PKEY *pkey, const char *kid)
{
    char a[800], b[800], *out;

    if (EVP_PKEY_is_a(pkey, "EC")) {
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        assert_true(
            asprintf(
                &out,
                "{\"kid\":\"%s\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                kid, a, b) > 0);
    } else {
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0, a);
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0, b);
        assert_true(asprintf(&out, "{\"kid\":\"%s\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                             kid, a, b) > 0);
    }
    return out;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char d[32];

    SHA256((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i != 32; ++i)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static cph_snapshot_t *build(const char *auth, const char *api_keys, const char *revoked)
{
    char *ec = jwk_of(ec_key, "ec1"), *rsa = jwk_of(rsa_key, "rsa1"), *text, hash[CPH_HASH_SIZE] = "";
    json_error_t jerr;
    json_t *body;
    cph_error_t err;
    cph_snapshot_t *s;

    memset(&err, 0, sizeof(err));
    assert_true(asprintf(&text, "{\"services\":[],\"routes\":[],\"keys\":[%s,%s],\"auth\":%s,\"api_keys\":%s,\"revoked\":%s}", ec,
                         rsa, auth, api_keys, revoked) > 0);
    if ((body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    if ((s = cph_snapshot_build(body, EPOCH, 1, hash, "cp", &err)) == NULL)
        fail_msg("build: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    free(text), free(ec), free(rsa);
    return s;
}

/* The default claims with patch applied (a null member removes the claim), compact. */
static char *claims_with(const char *patch)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:[s,s], s:[s], s:I, s:I, s:I, s:s, s:s}", "iss", "cephalo-test", "sub", "42", "sys",
                          "shop", "roles", "reader", "writer", "groups", "staff", "iat", (json_int_t)(NOW - 10), "nbf",
                          (json_int_t)(NOW - 10), "exp", (json_int_t)(NOW + 290), "jti", JTI, "name", "alice");

    return jwt_fixture_patch(c, patch);
}

/* A token signed by libjwt with alg and key (PEM or HMAC secret), header kid (NULL: none), claims patched. */
static char *sign(jwt_alg_t alg, const char *key, const char *kid, const char *patch)
{
    char *claims = claims_with(patch), *tok = jwt_fixture_sign(alg, key, kid, claims);

    free(claims);
    return tok;
}

static char *es(const char *patch)
{
    return sign(JWT_ALG_ES256, ec_priv, "ec1", patch);
}

static char *rs(const char *patch)
{
    return sign(JWT_ALG_RS256, rsa_priv, "rsa1", patch);
}

/* header.payload.sig from raw JSON texts; sig NULL: an RS256 signature by the RSA key over header.payload. */
static char *hand(const char *header, const char *payload, const char *sig)
{
    char h[2048], p[4096], s[1024], *out;
    unsigned char raw[512];
    size_t rawlen = sizeof(raw);

    b64url((const unsigned char *)header, strlen(header), h);
    b64url((const unsigned char *)payload, strlen(payload), p);
    if (sig == NULL) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        char *msg;
        assert_true(asprintf(&msg, "%s.%s", h, p) > 0);
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, rsa_key), 1);
        assert_int_equal(EVP_DigestSign(md, raw, &rawlen, (unsigned char *)msg, strlen(msg)), 1);
        EVP_MD_CTX_free(md);
        free(msg);
        b64url(raw, rawlen, s);
        sig = s;
    }
    assert_true(asprintf(&out, "%s.%s.%s", h, p, sig) > 0);
    return out;
}

/* ---------------------------------------------------------------- checking */

static const char *verify_at(const cph_snapshot_t *s, const char *tok, size_t len, time_t now, cph_principal_t *out)
{
    const char *reason = "unset";
    cph_principal_t dummy;
    cph_authn_result_t res;

    h2o_mem_clear_pool(&pool);
    res = cph_authn_verify_jwt(s, tok, len, now, &pool, out != NULL ? out : &dummy, &reason);
    if ((res == CPH_AUTHN_OK) != (reason == NULL))
        fail_msg("result %d disagrees with reason %s", (int)res, reason != NULL ? reason : "(null)");
    return reason != NULL ? reason : "ok";
}

/* Verifies tok (then freed) at NOW against s and compares the reason ("ok" = accepted). */
static void expect_at(const cph_snapshot_t *s, char *tok, time_t now, const char *want, int line)
{
    const char *got = verify_at(s, tok, strlen(tok), now, NULL);

    if (strcmp(got, want) != 0)
        fail_msg("line %d: expected %s, got %s", line, want, got);
    free(tok);
}
#define EXPECT(s, tok, want) expect_at(s, tok, NOW, want, __LINE__)

static void assert_iov(h2o_iovec_t v, const char *s)
{
    assert_int_equal(v.len, strlen(s));
    assert_memory_equal(v.base, s, v.len);
}

/* ---------------------------------------------------------------- JWT */

static void test_valid_tokens(void **state)
{
    cph_principal_t p;
    char *tok;

    (void)state;
    tok = es("{}");
    assert_string_equal(verify_at(snap, tok, strlen(tok), NOW, &p), "ok");
    assert_int_equal(p.kind, CPH_PRINCIPAL_USER);
    assert_iov(p.id, "42");
    assert_iov(p.name, "alice");
    assert_iov(p.system, "shop");
    assert_int_equal(p.num_roles, 2);
    assert_iov(p.roles[0], "reader");
    assert_iov(p.roles[1], "writer");
    assert_int_equal(p.num_groups, 1);
    assert_iov(p.groups[0], "staff");
    assert_int_equal(p.superuser, 0);
    assert_iov(p.jti, JTI);
    assert_int_equal(p.iat, NOW - 10);
    assert_int_equal(p.exp, NOW + 290);
    free(tok);
    tok = rs("{\"su\":true,\"roles\":[],\"groups\":[],\"name\":null}");
    assert_string_equal(verify_at(snap, tok, strlen(tok), NOW, &p), "ok");
    assert_int_equal(p.superuser, 1);
    assert_int_equal(p.num_roles, 0);
    assert_int_equal(p.num_groups, 0);
    assert_null(p.name.base);
    free(tok);
    EXPECT(snap, rs("{\"su\":false}"), "ok");
    /* the same claims signed by a key the snapshot does not hold, under a kid it does */
    EXPECT(snap, sign(JWT_ALG_ES256, other_priv, "ec1", "{}"), "bad_signature");
    EXPECT(snap, sign(JWT_ALG_ES256, other_priv, "ec2", "{}"), "unknown_kid");
    EXPECT(snap, sign(JWT_ALG_ES256, ec_priv, NULL, "{}"), "malformed");
}

static void test_alg_confusion(void **state)
{
    static const char *const nones[] = {"none", "None", "NONE", "nOnE"};
    char hdr[128], *tok, *claims = claims_with("{}");
    jwt_t *jwt = NULL;

    (void)state;
    for (size_t i = 0; i != sizeof(nones) / sizeof(nones[0]); ++i) {
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"ec1\"}", nones[i]);
        EXPECT(snap, hand(hdr, claims, "c2lnbmF0dXJl"), "alg_mismatch");
        tok = hand(hdr, claims, "x");
        tok[strlen(tok) - 1] = '\0'; /* "h.p." : the empty signature of an unsigned token */
        EXPECT(snap, tok, "malformed");
    }
    EXPECT(snap, sign(JWT_ALG_NONE, NULL, "ec1", "{}"), "malformed"); /* libjwt's own unsigned token */
    /* HS256 keyed with the RSA key's public PEM: libjwt alone accepts it when handed that PEM; we do not */
    tok = sign(JWT_ALG_HS256, rsa_pub, "rsa1", "{}");
    assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)rsa_pub, (int)strlen(rsa_pub)), 0);
    jwt_free(jwt);
    EXPECT(snap, tok, "alg_mismatch");
    EXPECT(snap, sign(JWT_ALG_HS256, snap->auth->keys[1].pem.base, "rsa1", "{}"), "alg_mismatch");
    /* ES256 header on the RSA kid (signed with the EC key), RS256 on the EC kid, algs of other sizes */
    EXPECT(snap, sign(JWT_ALG_ES256, ec_priv, "rsa1", "{}"), "alg_mismatch");
    EXPECT(snap, sign(JWT_ALG_RS256, rsa_priv, "ec1", "{}"), "alg_mismatch");
    EXPECT(snap, sign(JWT_ALG_RS512, rsa_priv, "rsa1", "{}"), "alg_mismatch");
    EXPECT(snap, hand("{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", claims, NULL), "alg_mismatch");
    /* the hand-signer itself is sound: the same RS256 token with the right header passes */
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"rsa1\"}", claims, NULL), "ok");
    free(claims);
}

static void test_structure(void **state)
{
    char *claims = claims_with("{}"), *tok, *big;
    const char *hdr = "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}";
    size_t dot;

    (void)state;
    /* segments */
    tok = rs("{}");
    dot = strchr(tok, '.') - tok;
    EXPECT(snap, strndup(tok, strrchr(tok, '.') - tok), "malformed"); /* 2 segments */
    {
        char *four;
        assert_true(asprintf(&four, "%s.c2ln", tok) > 0);
        EXPECT(snap, four, "malformed");
        assert_true(asprintf(&four, ".%s", tok + dot + 1) > 0);
        EXPECT(snap, four, "malformed"); /* empty header */
        assert_true(asprintf(&four, "%.*s..%s", (int)dot, tok, strrchr(tok, '.') + 1) > 0);
        EXPECT(snap, four, "malformed"); /* empty payload */
        assert_true(asprintf(&four, "%s ", tok) > 0);
        EXPECT(snap, four, "malformed");
    }
    EXPECT(snap, strdup(""), "malformed");
    EXPECT(snap, strdup(".."), "malformed");
    /* base64: a foreign character, padding, an impossible length, stray bits */
    EXPECT(snap, hand(hdr, claims, "ab!c"), "malformed");
    tok[1] = '+';
    EXPECT(snap, strdup(tok), "malformed");
    free(tok);
    EXPECT(snap, hand(hdr, claims, "c2ln="), "malformed");
    {
        char *t = hand(hdr, claims, "c2ln"), *h = strndup(t, strchr(t, '.') - t);
        char *bad;
        assert_true(asprintf(&bad, "%sA%s", h, strchr(t, '.')) > 0); /* header length % 4 == 1 or changed */
        EXPECT(snap, bad, "malformed");
        free(t), free(h);
    }
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}x", claims, "c2ln"), "malformed"); /* not JSON */
    EXPECT(snap, hand("[\"RS256\"]", claims, "c2ln"), "malformed");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"alg\":\"RS256\"}", claims, NULL), "malformed");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":7}", claims, NULL), "malformed");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"b64\"]}", claims, NULL), "malformed");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JOSE+JSON\"}", claims, NULL), "malformed");
    EXPECT(snap, hand(hdr, "{\"sub\":\"42\"", "c2ln"), "malformed");
    /* kids that are no kid */
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"../../etc/passwd\"}", claims, NULL), "unknown_kid");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1' OR 1=1 --\"}", claims, NULL), "unknown_kid");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa\"}", claims, NULL), "unknown_kid");
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\\u0000\"}", claims, NULL), "malformed");
    /* a flipped byte in the signature */
    tok = rs("{}");
    tok[strlen(tok) - 10] = tok[strlen(tok) - 10] == 'A' ? 'B' : 'A';
    EXPECT(snap, tok, "bad_signature");
    tok = es("{}");
    tok[strlen(tok) - 10] = tok[strlen(tok) - 10] == 'A' ? 'B' : 'A';
    EXPECT(snap, tok, "bad_signature");
    /* a payload changed under the old signature */
    {
        char *good = rs("{}"), *other = rs("{\"sub\":\"1\"}"), *mixed;
        assert_true(asprintf(&mixed, "%.*s%s", (int)(strrchr(other, '.') - other), other, strrchr(good, '.')) > 0);
        EXPECT(snap, mixed, "bad_signature");
        free(good), free(other);
    }
    /* the size cap is applied before reading: 1 MB, and one byte over the configured 8192 */
    assert_non_null(big = malloc(1 << 20));
    memset(big, 'A', 1 << 20);
    assert_string_equal(verify_at(snap, big, 1 << 20, NOW, NULL), "too_large");
    assert_string_equal(verify_at(snap, big, 8193, NOW, NULL), "too_large");
    assert_string_equal(verify_at(snap, big, 8192, NOW, NULL), "malformed");
    free(big);
    free(claims);
}

static void test_claims(void **state)
{
    (void)state;
    EXPECT(snap, rs("{\"sub\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"sys\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"jti\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"roles\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"groups\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"sub\":42}"), "bad_claims");
    EXPECT(snap, rs("{\"sub\":\"4x\"}"), "bad_claims");
    EXPECT(snap, rs("{\"sub\":\"042\"}"), "bad_claims");
    EXPECT(snap, rs("{\"sub\":\"\"}"), "bad_claims");
    EXPECT(snap, rs("{\"sys\":\"Shop\"}"), "bad_claims");
    EXPECT(snap, rs("{\"roles\":\"reader\"}"), "bad_claims");
    EXPECT(snap, rs("{\"roles\":[\"reader\",7]}"), "bad_claims");
    EXPECT(snap, rs("{\"groups\":{\"a\":1}}"), "bad_claims");
    EXPECT(snap, rs("{\"roles\":[\"a,b\"]}"), "bad_claims");
    EXPECT(snap, rs("{\"su\":1}"), "bad_claims");
    EXPECT(snap, rs("{\"su\":\"true\"}"), "bad_claims");
    EXPECT(snap, rs("{\"jti\":\"a/b\"}"), "bad_claims");
    EXPECT(snap, rs("{\"name\":5}"), "bad_claims");
    EXPECT(snap, rs("{\"exp\":\"" XSTR(NOW) "\"}"), "bad_claims");
    EXPECT(snap, rs("{\"exp\":1790000290.0}"), "bad_claims");
    EXPECT(snap, rs("{\"iat\":1789999990.5}"), "bad_claims");
    EXPECT(snap, rs("{\"nbf\":\"1789999990\"}"), "bad_claims");
    EXPECT(snap, rs("{\"exp\":999999999999999999}"), "bad_claims");
    EXPECT(snap, rs("{\"exp\":-1}"), "bad_claims");
    EXPECT(snap, rs("{\"exp\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"iat\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"nbf\":null}"), "bad_claims");
    EXPECT(snap, rs("{\"aud\":5}"), "bad_claims");
    /* beyond what jansson reads as an integer: refused unread */
    EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "{\"exp\":100000000000000000000000000000}", NULL), "malformed");
    /* duplicate claim names under a valid signature (libjwt would take the last one) */
    {
        char *c = claims_with("{}"), *dup;
        assert_true(asprintf(&dup, "{\"sub\":\"1\",%s", c + 1) > 0);
        EXPECT(snap, hand("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", dup, NULL), "malformed");
        free(c), free(dup);
    }
    EXPECT(snap, rs("{\"iss\":\"cephalo\"}"), "wrong_issuer");
    EXPECT(snap, rs("{\"iss\":null}"), "wrong_issuer");
    EXPECT(snap, rs("{\"iss\":\"cephalo-test \"}"), "wrong_issuer");
}

static void test_times(void **state)
{
    (void)state;
    /* leeway 30: exp must be > now - 30; iat and nbf <= now + 30 */
    EXPECT(snap, rs("{\"exp\":1789999970}"), "expired");
    EXPECT(snap, rs("{\"exp\":1789999971}"), "ok");
    EXPECT(snap, rs("{\"exp\":1000}"), "expired");
    EXPECT(snap, rs("{\"nbf\":1790000031}"), "not_yet_valid");
    EXPECT(snap, rs("{\"nbf\":1790000030}"), "ok");
    EXPECT(snap, rs("{\"iat\":1790000031}"), "not_yet_valid");
    EXPECT(snap, rs("{\"iat\":1790000030}"), "ok");
    /* the time is the caller's: the same token expires later on */
    expect_at(snap, rs("{}"), NOW + 319, "ok", __LINE__);
    expect_at(snap, rs("{}"), NOW + 320, "expired", __LINE__);
    expect_at(snap, rs("{}"), NOW - 40, "ok", __LINE__);
    expect_at(snap, rs("{}"), NOW - 41, "not_yet_valid", __LINE__);
    /* the audience snapshot: defaults (issuer "cephalo", leeway 30, 8192 bytes), audience "api" */
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":\"api\"}"), "ok");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":[\"web\",\"api\"]}"), "ok");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":[\"web\"]}"), "wrong_audience");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":\"apix\"}"), "wrong_audience");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\"}"), "wrong_audience");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":[\"api\",5]}"), "bad_claims");
    EXPECT(aud_snap, rs("{\"aud\":\"api\"}"), "wrong_issuer");
    /* no audience configured: a token with one still passes */
    EXPECT(snap, rs("{\"aud\":\"anything\"}"), "ok");
    EXPECT(snap, rs("{\"aud\":[\"a\",\"b\"]}"), "ok");
}

static void test_revoked(void **state)
{
    (void)state;
    EXPECT(snap, rs("{\"jti\":\"" REVOKED_JTI "\"}"), "revoked");
    EXPECT(snap, rs("{\"jti\":\"" REVOKED_JTI "0\"}"), "ok");
    /* user 7 revoked before NOW - 100: iat at or before it refused, after it accepted */
    EXPECT(snap, rs("{\"sub\":\"7\",\"iat\":1789999800,\"nbf\":1789999800}"), "revoked");
    EXPECT(snap, rs("{\"sub\":\"7\",\"iat\":1789999900,\"nbf\":1789999900}"), "revoked");
    EXPECT(snap, rs("{\"sub\":\"7\",\"iat\":1789999901,\"nbf\":1789999901}"), "ok");
    EXPECT(snap, rs("{\"sub\":\"8\",\"iat\":1789999800,\"nbf\":1789999800}"), "ok");
    EXPECT(aud_snap, rs("{\"iss\":\"cephalo\",\"aud\":\"api\",\"jti\":\"" REVOKED_JTI "\"}"), "ok");
}

/* ---------------------------------------------------------------- API keys */

static const char *key_reason(const char *key, const char *secret, time_t now, cph_principal_t *p)
{
    const char *reason = "unset";
    cph_principal_t dummy;
    cph_authn_result_t res = cph_authn_verify_api_key(snap, key, strlen(key), secret, secret != NULL ? strlen(secret) : 0, now,
                                                      p != NULL ? p : &dummy, &reason);

    if ((res == CPH_AUTHN_OK) != (reason == NULL))
        fail_msg("result %d disagrees with reason %s", (int)res, reason != NULL ? reason : "(null)");
    return reason != NULL ? reason : "ok";
}

static void test_api_keys(void **state)
{
    cph_principal_t p;

    (void)state;
    assert_string_equal(key_reason("0a1b2c3d4e." SECRET, NULL, NOW, &p), "ok");
    assert_int_equal(p.kind, CPH_PRINCIPAL_API_KEY);
    assert_iov(p.id, "3");
    assert_iov(p.name, "0a1b2c3d4e");
    assert_iov(p.system, "shop");
    assert_int_equal(p.num_roles, 1);
    assert_iov(p.roles[0], "reader");
    assert_int_equal(p.num_groups, 1);
    assert_iov(p.groups[0], "staff");
    assert_int_equal(p.superuser, 0);
    assert_int_equal(p.exp, 0);
    assert_string_equal(key_reason("0a1b2c3d4e", SECRET, NOW, &p), "ok"); /* Basic: given apart */
    assert_string_equal(key_reason("ffff0000." SECRET "2", NULL, NOW, &p), "ok");
    assert_iov(p.id, "9");
    assert_int_equal(p.num_roles, 0);
    assert_int_equal(p.exp, NOW + 100);
    assert_string_equal(key_reason("ffff0000." SECRET "2", NULL, NOW + 99, NULL), "ok");
    assert_string_equal(key_reason("ffff0000." SECRET "2", NULL, NOW + 100, NULL), "expired");
    assert_string_equal(key_reason("11112222." SECRET, NULL, NOW, NULL), "expired");
    assert_string_equal(key_reason("11112222.wrong", NULL, NOW, NULL), "bad_secret"); /* expiry told only to the holder */
    assert_string_equal(key_reason("0a1b2c3d4e." SECRET "x", NULL, NOW, NULL), "bad_secret");
    assert_string_equal(key_reason("0a1b2c3d4e.S3cr3t-Value_42", NULL, NOW, NULL), "bad_secret");
    assert_string_equal(key_reason("0a1b2c3d4e", "", NOW, NULL), "malformed");
    assert_string_equal(key_reason("0a1b2c3d4f." SECRET, NULL, NOW, NULL), "unknown_key");
    assert_string_equal(key_reason("0a1b2c3d." SECRET, NULL, NOW, NULL), "unknown_key");
    assert_string_equal(key_reason("0a1b2c3d4e" SECRET, NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("." SECRET, NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("0a1b2c3d4e.", NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason(".", NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("", NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("0A1B2C3D4E." SECRET, NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("0a1b2c3d4e0a1." SECRET, NULL, NOW, NULL), "malformed");
    assert_string_equal(key_reason("../../etc." SECRET, NULL, NOW, NULL), "malformed");
}

/* ---------------------------------------------------------------- filter/authn.c */

static struct {
    int calls, status;
    char body[512];
} sent;

/* Replaces libh2o's: the filter's 401 ends here instead of on a connection. */
void h2o_send_inline(h2o_req_t *req, const char *body, size_t len)
{
    sent.calls++;
    sent.status = req->res.status;
    snprintf(sent.body, sizeof(sent.body), "%.*s", (int)len, body);
}

typedef struct st_hdr_t {
    const char *name, *value;
} hdr_t;

/* Runs cph_authn_on_req with the headers given (NULL-terminated); returns its answer, the request kept in *out. */
static int run_filter(const hdr_t *hdrs, cph_req_t *r, h2o_req_t *req)
{
    memset(req, 0, sizeof(*req));
    memset(r, 0, sizeof(*r));
    memset(&sent, 0, sizeof(sent));
    h2o_mem_init_pool(&req->pool);
    req->processed_at.at.tv_sec = NOW;
    for (; hdrs->name != NULL; ++hdrs) {
        if (strcmp(hdrs->name, "authorization") == 0)
            h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_AUTHORIZATION, NULL, hdrs->value, strlen(hdrs->value));
        else
            h2o_add_header_by_str(&req->pool, &req->headers, hdrs->name, strlen(hdrs->name), 0, NULL, hdrs->value,
                                  strlen(hdrs->value));
    }
    r->req = req;
    r->snap = snap;
    r->request_id = h2o_iovec_init(H2O_STRLIT("req-1"));
    r->principal.kind = CPH_PRINCIPAL_USER; /* must be reset */
    return cph_authn_on_req(r);
}

static void expect_401(const hdr_t *hdrs, const char *error, int line)
{
    cph_req_t r;
    h2o_req_t req;
    char want[128];
    ssize_t i;

    if (run_filter(hdrs, &r, &req) != CPH_DONE || sent.calls != 1 || sent.status != 401)
        fail_msg("line %d: not answered 401 (calls %d, status %d)", line, sent.calls, sent.status);
    snprintf(want, sizeof(want), "Bearer realm=\"cephalo\", error=\"%s\"", error);
    i = h2o_find_header(&req.res.headers, H2O_TOKEN_WWW_AUTHENTICATE, -1);
    if (i < 0 || !h2o_memis(req.res.headers.entries[i].value.base, req.res.headers.entries[i].value.len, want, strlen(want)))
        fail_msg("line %d: WWW-Authenticate Bearer missing or wrong", line);
    i = h2o_find_header(&req.res.headers, H2O_TOKEN_WWW_AUTHENTICATE, i);
    if (i < 0 || !h2o_memis(req.res.headers.entries[i].value.base, req.res.headers.entries[i].value.len,
                            H2O_STRLIT("ApiKey realm=\"cephalo\"")))
        fail_msg("line %d: WWW-Authenticate ApiKey missing", line);
    snprintf(want, sizeof(want), "\"error\":\"%s\"", error);
    if (strstr(sent.body, want) == NULL || strstr(sent.body, "\"request_id\":\"req-1\"") == NULL)
        fail_msg("line %d: body %s", line, sent.body);
    assert_int_equal(r.principal.kind, CPH_PRINCIPAL_NONE);
    h2o_mem_clear_pool(&req.pool);
}
#define EXPECT_401(error, ...) expect_401((const hdr_t[]){__VA_ARGS__, {NULL, NULL}}, error, __LINE__)

static void expect_pass(const hdr_t *hdrs, cph_principal_kind_t kind, int strip, int line)
{
    cph_req_t r;
    h2o_req_t req;

    if (run_filter(hdrs, &r, &req) != CPH_NEXT || sent.calls != 0)
        fail_msg("line %d: refused (%s)", line, sent.body);
    if (r.principal.kind != kind || r.strip_credential != strip)
        fail_msg("line %d: principal kind %d strip %d", line, (int)r.principal.kind, r.strip_credential);
    h2o_mem_clear_pool(&req.pool);
}
#define EXPECT_PASS(kind, strip, ...) expect_pass((const hdr_t[]){__VA_ARGS__, {NULL, NULL}}, kind, strip, __LINE__)

static void test_filter(void **state)
{
    char *tok = rs("{}"), *bearer, *spaced, *lower, *basic_good, *basic_bad, *basic_nocolon, *other;
    unsigned char b64[256];

    (void)state;
    assert_true(asprintf(&bearer, "Bearer %s", tok) > 0);
    assert_true(asprintf(&spaced, "Bearer  \t %s  ", tok) > 0);
    assert_true(asprintf(&lower, "bEaReR %s", tok) > 0);
    EVP_EncodeBlock(b64, (const unsigned char *)"0a1b2c3d4e:" SECRET, (int)strlen("0a1b2c3d4e:" SECRET));
    assert_true(asprintf(&basic_good, "Basic %s", b64) > 0);
    EVP_EncodeBlock(b64, (const unsigned char *)"0a1b2c3d4e:wrong", (int)strlen("0a1b2c3d4e:wrong"));
    assert_true(asprintf(&basic_bad, "basic %s", b64) > 0);
    EVP_EncodeBlock(b64, (const unsigned char *)"0a1b2c3d4e." SECRET, (int)strlen("0a1b2c3d4e." SECRET));
    assert_true(asprintf(&basic_nocolon, "Basic %s", b64) > 0);
    other = es("{\"jti\":\"abc\"}");

    EXPECT_PASS(CPH_PRINCIPAL_NONE, 0, {"accept", "*/*"});
    EXPECT_PASS(CPH_PRINCIPAL_USER, 0, {"authorization", bearer});
    EXPECT_PASS(CPH_PRINCIPAL_USER, 0, {"authorization", spaced});
    EXPECT_PASS(CPH_PRINCIPAL_USER, 0, {"authorization", lower});
    EXPECT_PASS(CPH_PRINCIPAL_USER, 0, {"authorization", bearer}, {"authorization", bearer}); /* the same, twice */
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"x-api-key", "0a1b2c3d4e." SECRET});
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"X-Api-Key", "0a1b2c3d4e." SECRET});
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"authorization", "ApiKey 0a1b2c3d4e." SECRET});
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"authorization", "APIKEY   0a1b2c3d4e." SECRET});
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"authorization", basic_good});
    EXPECT_PASS(CPH_PRINCIPAL_API_KEY, 1, {"x-api-key", "0a1b2c3d4e." SECRET}, {"authorization", basic_good});

    EXPECT_401("invalid_token", {"authorization", "Bearer abc.def.ghi"});
    EXPECT_401("invalid_token", {"x-api-key", "0a1b2c3d4e.wrong"});
    EXPECT_401("invalid_token", {"x-api-key", "nodot"});
    EXPECT_401("invalid_token", {"x-api-key", ""});
    EXPECT_401("invalid_token", {"authorization", "ApiKey 11112222." SECRET}); /* expired */
    EXPECT_401("invalid_token", {"authorization", basic_bad});
    EXPECT_401("invalid_token", {"authorization", basic_nocolon});
    EXPECT_401("invalid_token", {"authorization", "Basic !!!!"});
    EXPECT_401("invalid_token", {"authorization", "Basic YWJj=ZGVm"});
    EXPECT_401("invalid_token", {"authorization", "Basic YWJjZA"});
    EXPECT_401("invalid_token", {"authorization", "Basic ===="});
    EXPECT_401("invalid_token", {"authorization", "Basic MGExYjJjM2Q0ZTphAWI="}); /* "0a1b2c3d4e:a\x01b" */
    EXPECT_401("invalid_request", {"authorization", "Bearer"});
    EXPECT_401("invalid_request", {"authorization", "Bearer   "});
    EXPECT_401("invalid_request", {"authorization", "Bearer a b"});
    EXPECT_401("invalid_request", {"authorization", "Digest username=\"x\""});
    EXPECT_401("invalid_request", {"authorization", "Bearerx abc"});
    EXPECT_401("invalid_request", {"authorization", bearer}, {"x-api-key", "0a1b2c3d4e." SECRET});
    EXPECT_401("invalid_request", {"x-api-key", "0a1b2c3d4e." SECRET}, {"x-api-key", "ffff0000." SECRET "2"});
    {
        char *second;
        assert_true(asprintf(&second, "Bearer %s", other) > 0);
        EXPECT_401("invalid_request", {"authorization", bearer}, {"authorization", second});
        free(second);
    }
    free(tok), free(bearer), free(spaced), free(lower), free(basic_good), free(basic_bad), free(basic_nocolon), free(other);
}

/* ---------------------------------------------------------------- main */

static int setup(void **state)
{
    char api_keys[1024], h1[65], h2[65];

    (void)state;
    sha256_hex(SECRET, h1);
    sha256_hex(SECRET "2", h2);
    snprintf(api_keys, sizeof(api_keys),
             "[{\"id\":9,\"prefix\":\"ffff0000\",\"secret_sha256\":\"%s\",\"system\":\"shop\",\"roles\":[],\"groups\":[],"
             "\"expires_at\":%d},"
             "{\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"%s\",\"system\":\"shop\",\"roles\":[\"reader\"],"
             "\"groups\":[\"staff\"],\"expires_at\":null},"
             "{\"id\":4,\"prefix\":\"11112222\",\"secret_sha256\":\"%s\",\"system\":\"shop\",\"roles\":[],\"groups\":[],"
             "\"expires_at\":%d}]",
             h2, NOW + 100, h1, h1, NOW - 1);
    snap = build("{\"issuer\":\"cephalo-test\",\"audience\":null,\"leeway_s\":30,\"max_token_bytes\":8192,"
                 "\"header_prefix\":\"x-cephalo-\",\"api\":null}",
                 api_keys,
                 "{\"users\":[{\"id\":7,\"before\":1789999900},{\"id\":3,\"before\":1}],\"tokens\":[{\"jti\":\"" REVOKED_JTI
                 "\",\"exp\":1790000300}]}");
    aud_snap = build("{\"audience\":\"api\"}", "[]", "{\"users\":[],\"tokens\":[]}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cph_snapshot_release(snap);
    cph_snapshot_release(aud_snap);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tokens), cmocka_unit_test(test_alg_confusion), cmocka_unit_test(test_structure),
        cmocka_unit_test(test_claims),       cmocka_unit_test(test_times),         cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_api_keys),     cmocka_unit_test(test_filter),
    };
    int ret;

    ec_key = EVP_EC_gen("P-256");
    other_ec_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    if (ec_key == NULL || rsa_key == NULL || other_ec_key == NULL)
        return 1;
    ec_priv = pem_of(ec_key, 1);
    rsa_priv = pem_of(rsa_key, 1);
    other_priv = pem_of(other_ec_key, 1);
    rsa_pub = pem_of(rsa_key, 0);
    h2o_mem_init_pool(&pool);
    ret = cmocka_run_group_tests(tests, setup, teardown);
    h2o_mem_clear_pool(&pool);
    free(ec_priv), free(rsa_priv), free(other_priv), free(rsa_pub);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(other_ec_key);
    EVP_PKEY_free(rsa_key);
    return ret;
}
