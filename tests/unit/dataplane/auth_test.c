/*
 * auth_test: compile/auth.c through cph_snapshot_build. Real keys (EC P-256 and RSA 2048 generated with OpenSSL,
 * their JWKs written as the control plane writes them) become the served JWKS document, equal in content to the
 * body's keys and in their order, and a kid -> (alg, public key) table whose keys equal the originals and verify
 * their signatures; a body without keys serves {"keys":[]}. Hostile keys (private members, a kid with path or SQL
 * characters, alg none, padded or oversized numbers) are refused by the validator before any compile step, with the
 * pointer of the offending value; well-formed numbers that are no key (an EC point off the curve) are refused by the
 * compile step at /keys/N. Nothing leaks, also when a build fails after some keys were made (ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "dataplane/compile/auth.h"
#include "dataplane/core/snapshot.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
/* well-formed 32-byte coordinates (not a point on the curve: enough for the validator's cases) */
#define X "nFpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo"
#define Y "AP________________________________________8"
#define EC(kid, extra)                                                                                                             \
    "{\"kid\":\"" kid "\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"" X "\",\"y\":\"" Y           \
    "\"" extra "}"

static cph_snapshot_t *build(const char *keys, cph_error_t *err, json_t **bodyp)
{
    char *text, hash[CPH_HASH_SIZE] = "";
    json_error_t jerr;
    json_t *body;
    cph_snapshot_t *snap;

    if (keys != NULL)
        assert_true(asprintf(&text, "{\"services\":[],\"routes\":[],\"keys\":%s}", keys) > 0);
    else
        assert_non_null(text = strdup("{\"services\":[],\"routes\":[]}"));
    if ((body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    free(text);
    memset(err, 0, sizeof(*err));
    snap = cph_snapshot_build(body, EPOCH, 1, hash, "cp", err);
    if (bodyp != NULL)
        *bodyp = body;
    else
        json_decref(body);
    return snap;
}

/* Unpadded base64url of a key parameter, left-padded to pad bytes (0: minimal). */
static void b64url_param(const EVP_PKEY *pkey, const char *name, int pad, char *out, size_t cap)
{
    unsigned char bin[600];
    BIGNUM *bn = NULL;
    int n, len;

    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    assert_int_equal(BN_bn2binpad(bn, bin, n), n);
    assert_true((size_t)(4 * (n / 3 + 1)) < cap);
    len = EVP_EncodeBlock((unsigned char *)out, bin, n);
    while (len > 0 && out[len - 1] == '=')
        --len;
    out[len] = '\0';
    for (int i = 0; i < len; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    BN_free(bn);
}

/* The public JWK of pkey as the control plane writes it (a new string). */
static char *jwk_of(const EVP_PKEY *pkey, const char *kid)
{
    char a[800], b[800], *out;

    if (EVP_PKEY_is_a(pkey, "EC")) {
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a, sizeof(a));
        b64url_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b, sizeof(b));
        assert_true(asprintf(&out,
                             "{\"kid\":\"%s\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\","
                             "\"y\":\"%s\"}",
                             kid, a, b) > 0);
    } else {
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0, a, sizeof(a));
        b64url_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0, b, sizeof(b));
        assert_true(asprintf(&out, "{\"kid\":\"%s\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                             kid, a, b) > 0);
    }
    return out;
}

/* Signs msg with priv (SHA-256) and verifies it with pub; returns EVP_DigestVerify's answer for msg or a changed msg. */
static int sign_verify(EVP_PKEY *priv, EVP_PKEY *pub, int tamper)
{
    unsigned char msg[] = "header.payload", sig[600];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, priv), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg) - 1), 1);
    EVP_MD_CTX_free(md);
    md = EVP_MD_CTX_new();
    msg[0] ^= (unsigned char)tamper;
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    ok = EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg) - 1);
    EVP_MD_CTX_free(md);
    return ok;
}

static EVP_PKEY *ec_key, *rsa_key;

static void test_valid_keys(void **state)
{
    char *keys, *a = jwk_of(ec_key, "a1"), *b = jwk_of(rsa_key, "b2");
    cph_error_t err;
    json_t *body, *served;
    cph_snapshot_t *snap;

    (void)state;
    assert_true(asprintf(&keys, "[%s,%s]", a, b) > 0);
    free(a), free(b);
    snap = build(keys, &err, &body);
    free(keys);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_non_null(snap->auth);
    assert_int_equal(snap->auth->num_keys, 2);
    assert_string_equal(snap->auth->keys[0].kid, "a1");
    assert_string_equal(snap->auth->keys[0].alg, "ES256");
    assert_string_equal(snap->auth->keys[1].kid, "b2");
    assert_string_equal(snap->auth->keys[1].alg, "RS256");
    assert_ptr_equal(cph_auth_find_key(snap->auth, "b2", 2), &snap->auth->keys[1]);
    assert_null(cph_auth_find_key(snap->auth, "b", 1));
    assert_null(cph_auth_find_key(snap->auth, "b2x", 3));
    assert_null(cph_auth_find_key(NULL, "a1", 2));
    /* the compiled keys are the originals' public halves: equal, and they verify what the private halves signed */
    assert_int_equal(EVP_PKEY_eq(snap->auth->keys[0].pkey, ec_key), 1);
    assert_int_equal(EVP_PKEY_eq(snap->auth->keys[1].pkey, rsa_key), 1);
    assert_int_not_equal(EVP_PKEY_eq(snap->auth->keys[0].pkey, rsa_key), 1); /* -1: different types */
    assert_int_equal(sign_verify(ec_key, snap->auth->keys[0].pkey, 0), 1);
    assert_int_equal(sign_verify(rsa_key, snap->auth->keys[1].pkey, 0), 1);
    assert_int_not_equal(sign_verify(ec_key, snap->auth->keys[0].pkey, 1), 1);
    assert_int_not_equal(sign_verify(rsa_key, snap->auth->keys[1].pkey, 1), 1);
    /* the served document is the body's keys, nothing added, nothing lost, same order */
    served = json_loadb(snap->auth->jwks.base, snap->auth->jwks.len, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(served);
    assert_int_equal(json_object_size(served), 1);
    assert_true(json_equal(json_object_get(served, "keys"), json_object_get(body, "keys")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(served, "keys"), 0), "kid")), "a1");
    assert_null(memchr(snap->auth->jwks.base, '\n', snap->auth->jwks.len)); /* compact */
    json_decref(served);
    json_decref(body);
    cph_snapshot_release(snap);
}

/* Numbers the validator accepts that are no key: refused by the compile step, the keys already built freed. */
static void test_not_a_key(void **state)
{
    char *keys, *good = jwk_of(rsa_key, "good");
    cph_error_t err;
    json_t *body;
    cph_snapshot_t *snap;

    (void)state;
    assert_true(asprintf(&keys, "[%s," EC("off-curve", "") "]", good) > 0);
    snap = build(keys, &err, &body);
    assert_null(snap);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/keys/1");
    memset(&err, 0, sizeof(err));
    assert_int_equal(cph_snapshot_validate(body, &err), 0); /* the validator checks form, OpenSSL checks the maths */
    json_decref(body);
    free(keys);
    free(good);
}

static void test_no_keys(void **state)
{
    cph_error_t err;
    cph_snapshot_t *snap;

    (void)state;
    assert_non_null(snap = build(NULL, &err, NULL));
    assert_non_null(snap->auth);
    assert_int_equal(snap->auth->num_keys, 0);
    assert_int_equal(snap->auth->jwks.len, strlen("{\"keys\":[]}"));
    assert_memory_equal(snap->auth->jwks.base, "{\"keys\":[]}", snap->auth->jwks.len);
    cph_snapshot_release(snap);
    assert_non_null(snap = build("[]", &err, NULL));
    assert_int_equal(snap->auth->num_keys, 0);
    assert_memory_equal(snap->auth->jwks.base, "{\"keys\":[]}", snap->auth->jwks.len);
    cph_snapshot_release(snap);
}

static void test_hostile_keys(void **state)
{
    static const struct {
        const char *keys, *code, *path;
    } cases[] = {
        {"[" EC("k", ",\"d\":\"AQAB\"") "]", "unknown_field", "/keys/0/d"},
        {"[" EC("k", "") "," EC("../../etc/passwd", "") "]", "invalid", "/keys/1/kid"},
        {"[" EC("k' OR 1=1 --", "") "]", "invalid", "/keys/0/kid"},
        {"[" EC("k", "") "," EC("k", "") "]", "duplicate", "/keys/1/kid"},
        {"[{\"kid\":\"k\",\"alg\":\"none\",\"kty\":\"EC\",\"use\":\"sig\"}]", "invalid", "/keys/0/alg"},
        {"[{\"kid\":\"k\",\"alg\":\"HS256\",\"kty\":\"oct\",\"use\":\"sig\",\"k\":\"c2VjcmV0\"}]", "unknown_field", "/keys/0/k"},
        {"[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"" X "=\",\"y\":\"" Y "\"}]",
         "invalid", "/keys/0/x"},
        {"[{\"kid\":\"k\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]", "invalid",
         "/keys/0/n"},
        {"{\"kid\":\"k\"}", "invalid", "/keys"},
    };
    size_t i;

    (void)state;
    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        cph_error_t err;
        cph_snapshot_t *snap = build(cases[i].keys, &err, NULL);
        if (snap != NULL)
            fail_msg("case %zu: accepted", i);
        if (strcmp(err.code, cases[i].code) != 0 || strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu: expected %s at %s, got %s at %s (%s)", i, cases[i].code, cases[i].path, err.code, err.path,
                     err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_keys),
        cmocka_unit_test(test_not_a_key),
        cmocka_unit_test(test_no_keys),
        cmocka_unit_test(test_hostile_keys),
    };
    int ret;

    ec_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    if (ec_key == NULL || rsa_key == NULL)
        return 1;
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(rsa_key);
    return ret;
}
