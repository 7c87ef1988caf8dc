/*
 * fuzz_jwt: the data plane's credential checks (core/authn.c) - the JWT pre-parse (size, three base64url segments,
 * strict JSON header and claims, alg / kid / typ / crit), the key choice (own keys or an external issuer's), libjwt's
 * signature check and every claim check after it - and the API key parse.
 *
 * The snapshot is fixed: the control plane's own ES256 key "own1" (issuer "cephalo", leeway 30 s), an external issuer
 * "https://idp.example" with its own ES256 key "idp1" (system "ext", audience "gw", roles from "realm.roles"), one
 * revoked jti and one revoked user, one API key. Keys are fixed PEMs, so runs are reproducible.
 *
 * Input: byte 0 picks the mode (bits 0-1) and the signing key (bits 2-3: own, idp, a key nobody knows).
 *   mode 0: the rest is the token, as sent after "Bearer ";
 *   mode 1: the rest is header JSON, a NUL byte, claims JSON; the harness encodes both and signs them with the chosen
 *           key, so the claim checks behind the signature are reached (no header part: a default ES256 header naming
 *           the chosen key's kid);
 *   mode 2: the rest is an API key "<prefix>.<secret>";
 *   mode 3: as mode 1, with the signature of another key (a forged token: must never pass).
 *
 * Properties (a violation traps): a refusal has one of the documented reasons and an acceptance none; an accepted
 * token was signed by the key its kid names (when the harness signed it), the key belongs to the issuer its iss names
 * (a key of one issuer never verifies another's token), its alg is the key's (never "none"), exp is after now -
 * leeway and iat / nbf before now + leeway, it is not revoked, an own token's principal is what its claims say, and an
 * external issuer's principal is in the issuer's system and never a superuser; an accepted API key has the right
 * secret.
 */
#include <stdint.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include "fuzz_util.h"
#include "dataplane/core/authn.h"

#define NOW 1790000000
#define LEEWAY 30
#define IDP_ISS "https://idp.example"
#define REVOKED_JTI "revoked-jti-0123"
#define REVOKED_USER 5
#define REVOKED_BEFORE 1789990000
#define API_PREFIX "0a1b2c3d4e"
#define API_SECRET "s3cr3t-Value_42"
#define MAX_TOKEN 8192

static const char *const pems[] = {
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqO2MwEiGYbBRNcSg\n"
    "5aHjb5HppOJKwrOmUzuvMeVvPxChRANCAAQCw64pLluJq+9v0Uasi2Qykk/ADt+d\n"
    "r/4mnuzYR6zx+6lweSvjFVzUeUinC+WARHj594/uGh96HqhQFakw9zSe\n"
    "-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUCnapVTKRLbcGy30\n"
    "sw/VPg8UiO1pAX8rXb0WD3o4MyKhRANCAAQC/RnY6T8XhCMD0nOnWILW47X//GF8\n"
    "LgDIddIdGOmvufGMJstJ8tULE8az+VGyUhv6SiqXSZ7L7jCiWgEJDo99\n"
    "-----END PRIVATE KEY-----\n",
};
static const char *const kids[] = {"own1", "idp1", "nobody1"};
static EVP_PKEY *keys[3]; /* own, idp, a third one generated at start (nobody's) */
static cph_snapshot_t *snap;

static const char *const reasons[] = {"too_large",  "malformed",      "alg_mismatch",   "unknown_kid", "bad_signature",
                                      "bad_claims", "wrong_issuer",   "wrong_audience", "expired",     "not_yet_valid",
                                      "revoked",    "unknown_issuer", "unknown_key",    "bad_secret",  NULL};

/* ---------------------------------------------------------------- keys and signatures */

static void b64url_bn(const EVP_PKEY *pkey, const char *param, char *out, size_t cap)
{
    unsigned char bin[32];
    BIGNUM *bn = NULL;

    FUZZ_SETUP(EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && BN_bn2binpad(bn, bin, 32) == 32, "EC parameter");
    cph_b64url_encode(bin, sizeof(bin), out, cap);
    BN_free(bn);
}

static char *jwk(int i)
{
    char x[64], y[64], *out;

    b64url_bn(keys[i], OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(x));
    b64url_bn(keys[i], OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y));
    FUZZ_SETUP(
        asprintf(&out,
                 "{\"kid\":\"%s\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                 kids[i], x, y) > 0,
        "asprintf");
    return out;
}

/* The JWS ES256 signature (raw r || s, base64url) of in[0..len) by key into out. */
static void sign(EVP_PKEY *key, const char *in, size_t len, char *out, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[128], raw[64];
    const unsigned char *p = der;
    size_t dlen = sizeof(der);
    ECDSA_SIG *sig;
    const BIGNUM *r, *s;

    FUZZ_SETUP(ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
                   EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)in, len) == 1,
               "sign");
    FUZZ_SETUP((sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) != NULL, "signature DER");
    ECDSA_SIG_get0(sig, &r, &s);
    FUZZ_SETUP(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32, "signature size");
    cph_b64url_encode(raw, sizeof(raw), out, cap);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char *own, *idp, *body, sha[65];
    unsigned char d[32];

    (void)argc, (void)argv;
    fuzz_quiet();
    for (int i = 0; i != 2; ++i) {
        BIO *bio = BIO_new_mem_buf(pems[i], -1);
        FUZZ_SETUP((keys[i] = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) != NULL, "PEM %d", i);
        BIO_free(bio);
    }
    FUZZ_SETUP((keys[2] = EVP_EC_gen("P-256")) != NULL, "EC key");
    SHA256((const unsigned char *)API_SECRET, strlen(API_SECRET), d);
    for (int i = 0; i != 32; ++i)
        sprintf(sha + 2 * i, "%02x", d[i]);
    own = jwk(0), idp = jwk(1);
    FUZZ_SETUP(asprintf(&body,
                        "{\"services\":[],\"routes\":[],\"keys\":[%s],"
                        "\"auth\":{\"issuer\":\"cephalo\",\"audience\":null,\"leeway_s\":%d,\"max_token_bytes\":%d,"
                        "\"issuers\":[{\"name\":\"idp\",\"issuer\":\"" IDP_ISS "\",\"audience\":\"gw\",\"system\":\"ext\","
                        "\"roles_claim\":\"realm.roles\",\"groups_claim\":\"groups\",\"keys\":[%s]}]},"
                        "\"api_keys\":[{\"id\":3,\"prefix\":\"" API_PREFIX "\",\"secret_sha256\":\"%s\",\"system\":\"shop\","
                        "\"roles\":[\"reader\"],\"groups\":[],\"expires_at\":%d}],"
                        "\"revoked\":{\"users\":[{\"id\":%d,\"before\":%d}],\"tokens\":[{\"jti\":\"" REVOKED_JTI
                        "\",\"exp\":%d}]}}",
                        own, LEEWAY, MAX_TOKEN, idp, sha, NOW + 3600, REVOKED_USER, REVOKED_BEFORE, NOW + 3600) > 0,
               "asprintf");
    snap = fuzz_snapshot(body);
    free(own), free(idp), free(body);
    return 0;
}

/* ---------------------------------------------------------------- what an accepted token must be */

static json_t *segment_json(const char *s, size_t len)
{
    unsigned char buf[MAX_TOKEN];
    long n = cph_b64url_decode(s, len, buf, sizeof(buf));

    return n < 0 ? NULL : json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
}

static int64_t int_claim(const json_t *claims, const char *name, int64_t dflt)
{
    const json_t *v = json_object_get(claims, name);
    return v != NULL ? (int64_t)json_integer_value(v) : dflt;
}

/* signer: the key index the harness signed with, or -1 when unknown (a raw token). */
static void check_accepted(const char *tok, size_t len, int signer, const cph_principal_t *p)
{
    const char *dot1 = memchr(tok, '.', len), *dot2 = NULL;
    json_t *header, *claims;
    const char *kid, *iss, *alg;
    int own;

    FUZZ_CHECK(dot1 != NULL && (dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok))) != NULL);
    FUZZ_CHECK((header = segment_json(tok, (size_t)(dot1 - tok))) != NULL);
    FUZZ_CHECK((claims = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1))) != NULL);
    alg = json_string_value(json_object_get(header, "alg"));
    kid = json_string_value(json_object_get(header, "kid"));
    iss = json_string_value(json_object_get(claims, "iss"));
    FUZZ_CHECK(alg != NULL && strcmp(alg, "ES256") == 0 && kid != NULL && iss != NULL);
    own = strcmp(iss, IDP_ISS) != 0;
    FUZZ_CHECK(strcmp(kid, own ? "own1" : "idp1") == 0); /* the key of the issuer the token names */
    FUZZ_CHECK(signer < 0 || signer == (own ? 0 : 1));   /* and it really signed */
    FUZZ_CHECK(json_is_integer(json_object_get(claims, "exp")) && int_claim(claims, "exp", 0) > NOW - LEEWAY);
    FUZZ_CHECK(int_claim(claims, "iat", 0) <= NOW + LEEWAY && int_claim(claims, "nbf", 0) <= NOW + LEEWAY);
    FUZZ_CHECK(!json_is_string(json_object_get(claims, "jti")) ||
               strcmp(json_string_value(json_object_get(claims, "jti")), REVOKED_JTI) != 0);
    FUZZ_CHECK(p->kind == CPH_PRINCIPAL_USER);
    if (own) {
        const char *sub = json_string_value(json_object_get(claims, "sub"));
        FUZZ_CHECK(strcmp(iss, "cephalo") == 0 && sub != NULL);
        FUZZ_CHECK(h2o_memis(p->id.base, p->id.len, sub, strlen(sub)));
        FUZZ_CHECK(p->superuser == json_is_true(json_object_get(claims, "su")));
        FUZZ_CHECK(!(strtoll(sub, NULL, 10) == REVOKED_USER && int_claim(claims, "iat", 0) <= REVOKED_BEFORE));
    } else {
        FUZZ_CHECK(!p->superuser && h2o_memis(p->system.base, p->system.len, H2O_STRLIT("ext")));
    }
    json_decref(header);
    json_decref(claims);
}

static void check_result(cph_authn_result_t res, const char *reason)
{
    size_t i = 0;

    FUZZ_CHECK((res == CPH_AUTHN_OK) == (reason == NULL));
    while (reason != NULL && reasons[i] != NULL && strcmp(reasons[i], reason) != 0)
        ++i;
    FUZZ_CHECK(reason == NULL || reasons[i] != NULL);
}

/* ---------------------------------------------------------------- modes */

static void verify(const char *tok, size_t len, int signer)
{
    h2o_mem_pool_t pool;
    cph_principal_t p;
    const char *reason;
    cph_authn_result_t res;

    h2o_mem_init_pool(&pool);
    memset(&p, 0, sizeof(p));
    res = cph_authn_verify_jwt(snap, tok, len, NOW, &pool, &p, &reason);
    check_result(res, reason);
    if (fuzz_verbose())
        fprintf(stderr, "fuzz: token %s\n", reason != NULL ? reason : "accepted");
    if (res == CPH_AUTHN_OK)
        check_accepted(tok, len, signer, &p);
    h2o_mem_clear_pool(&pool);
}

/* Mode 1 and 3: header and claims from the input, signed by keys[key] (or, forged, by the next key). */
static void signed_token(const uint8_t *data, size_t size, int key, int forged)
{
    const uint8_t *nul = memchr(data, '\0', size);
    char dflt[64], *tok;
    const char *h = dflt, *c = (const char *)data;
    size_t hlen, clen = size, o;

    snprintf(dflt, sizeof(dflt), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kids[key]);
    hlen = strlen(dflt);
    if (nul != NULL) {
        h = (const char *)data, hlen = (size_t)(nul - data);
        c = (const char *)nul + 1, clen = size - hlen - 1;
    }
    if ((hlen + clen) * 4 / 3 + 200 > MAX_TOKEN)
        return;
    tok = malloc(MAX_TOKEN + 1);
    o = cph_b64url_encode((const unsigned char *)h, hlen, tok, CPH_B64URL_ENCODE_CAP(hlen));
    tok[o++] = '.';
    o += cph_b64url_encode((const unsigned char *)c, clen, tok + o, CPH_B64URL_ENCODE_CAP(clen));
    sign(keys[forged ? (key + 1) % 3 : key], tok, o, tok + o + 1, 100);
    tok[o] = '.';
    o += strlen(tok + o);
    verify(tok, o, forged ? (key + 1) % 3 : key);
    free(tok);
}

static void api_key(const uint8_t *data, size_t size)
{
    cph_principal_t p;
    const char *reason, *dot = memchr(data, '.', size);
    cph_authn_result_t res = cph_authn_verify_api_key(snap, (const char *)data, size, NULL, 0, NOW, &p, &reason);

    check_result(res, reason);
    if (res == CPH_AUTHN_OK)
        FUZZ_CHECK(dot != NULL && h2o_memis((const char *)data, size, H2O_STRLIT(API_PREFIX "." API_SECRET)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode, key;

    if (size < 1)
        return 0;
    mode = data[0] & 3, key = (data[0] >> 2) % 3;
    ++data, --size;
    switch (mode) {
    case 0:
        verify((const char *)data, size, -1);
        break;
    case 2:
        api_key(data, size);
        break;
    default:
        signed_token(data, size, key, mode == 3);
        break;
    }
    return 0;
}
