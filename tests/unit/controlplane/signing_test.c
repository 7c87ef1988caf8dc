/*
 * signing_test: the control plane's signing keys - generation of both algorithms, their public JWKs (field sizes,
 * and a JWK rebuilt into an EVP_PKEY equals the stored public key, which matches the private one), rotation through
 * the real write path with a controlled clock (active -> retiring with retire_after = rotation + the token lifetime
 * -> retired, lazily on read and for good at the next rotation), exactly one active key, the JWKS membership, and
 * that the private key reaches no list, get, JWKS or audit row. Hostile input: bad rotation bodies, unknown
 * algorithms, unparsable or mismatched PEMs, odd lookup keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "controlplane/db.h"
#include "controlplane/signing.h"

#define T0 ((time_t)1893456000) /* 2030-01-01T00:00:00Z */

/* ---------------------------------------------------------------- helpers */

/* Unpadded base64url -> bytes; returns the length, or -1 when s is not canonical unpadded base64url. */
static int setup(void **state)
{
    return db_fixture_setup(state, "signing-test");
}

static int b64url_decode(const char *s, unsigned char *out, size_t cap)
{
    char buf[2048];
    size_t n = strlen(s), m;
    int len;

    if (n + 4 >= sizeof(buf) || n % 4 == 1 || (n + 3) / 4 * 3 > cap)
        return -1;
    for (size_t i = 0; i < n; ++i) {
        if (strchr("+/=", s[i]) != NULL)
            return -1;
        buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    for (m = n; m % 4 != 0; ++m)
        buf[m] = '=';
    buf[m] = '\0';
    if ((len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)m)) < 0)
        return -1;
    return len - (int)(m - n); /* EVP_DecodeBlock counts the padding as zero bytes */
}

static EVP_PKEY *read_pem(const char *pem, int priv)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);

    BIO_free(bio);
    return k;
}

static BIGNUM *member_bn(const json_t *jwk, const char *m, int want_len)
{
    unsigned char bin[1024];
    int n = b64url_decode(json_string_value(json_object_get(jwk, m)), bin, sizeof(bin));

    assert_true(n > 0);
    if (want_len > 0)
        assert_int_equal(n, want_len);
    return BN_bin2bn(bin, n, NULL);
}

/* Builds a public EVP_PKEY from a JWK's own numbers. */
static EVP_PKEY *pkey_from_jwk(const json_t *jwk)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params;
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *pkey = NULL;
    int ec = strcmp(json_string_value(json_object_get(jwk, "kty")), "EC") == 0;
    BIGNUM *a = member_bn(jwk, ec ? "x" : "n", ec ? 32 : 256), *b = member_bn(jwk, ec ? "y" : "e", ec ? 32 : 0);
    unsigned char point[65];

    if (ec) {
        point[0] = 0x04; /* uncompressed */
        assert_int_equal(BN_bn2binpad(a, point + 1, 32), 32);
        assert_int_equal(BN_bn2binpad(b, point + 33, 32), 32);
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
    } else {
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, a);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b);
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(a);
    BN_free(b);
    return pkey;
}

static int64_t count(cph_db_t *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return n;
}

/* Fails when text holds any private-key marker, or the body line of any stored private key. */
static void assert_no_private(cph_db_t *db, const char *text)
{
    sqlite3_stmt *st = NULL;

    assert_null(strstr(text, "PRIVATE KEY"));
    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), "SELECT private_pem FROM signing_keys", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *pem = (const char *)sqlite3_column_text(st, 0), *line = strchr(pem, '\n');
        char chunk[41];
        assert_non_null(line);
        snprintf(chunk, sizeof(chunk), "%s", line + 1); /* 40 characters of the base64 body */
        assert_int_equal(strlen(chunk), 40);
        assert_null(strstr(text, chunk));
    }
    sqlite3_finalize(st);
    cph_db_unlock(db);
}

typedef struct st_rot_t {
    cph_signing_new_t key;
    time_t now;
} rot_t;

static int on_rotate(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    rot_t *r = p;
    return cph_signing_rotate(db, &r->key, r->now, change, err);
}

/* Rotates to a new key of alg at now; returns the new kid in kid (33 bytes). */
static void rotate(cph_db_t *db, const char *alg, time_t now, char *kid)
{
    rot_t r = {.now = now};
    cph_error_t err;
    uint64_t version;

    assert_int_equal(cph_signing_new(alg, &r.key, &err), 0);
    if (cph_db_write(db, "test", on_rotate, &r, &version, &err) != 0)
        fail_msg("rotation failed: %s %s %s", err.code, err.path, err.msg);
    snprintf(kid, 33, "%s", r.key.kid);
    cph_signing_new_clear(&r.key);
}

static json_t *get(cph_db_t *db, const char *key, time_t now)
{
    cph_error_t err;
    json_t *out;

    cph_db_lock(db);
    out = cph_signing_get(db, key, now, &err);
    cph_db_unlock(db);
    if (out == NULL)
        fail_msg("get %s: %s", key, err.msg);
    return out;
}

static json_t *jwks(cph_db_t *db, time_t now)
{
    cph_error_t err;
    json_t *out;

    cph_db_lock(db);
    out = cph_signing_jwks(db, now, &err);
    cph_db_unlock(db);
    assert_non_null(out);
    return out;
}

static const char *state_of(cph_db_t *db, const char *kid, time_t now)
{
    static char buf[16];
    json_t *k = get(db, kid, now);

    snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(k, "state")));
    json_decref(k);
    return buf;
}

/* ---------------------------------------------------------------- generation and JWKs */

static void check_generated(const char *alg)
{
    cph_signing_new_t k, k2;
    cph_error_t err;
    EVP_PKEY *pub, *priv, *from_jwk;
    json_t *jwk;
    unsigned char bin[512];

    assert_int_equal(cph_signing_new(alg, &k, &err), 0);
    assert_int_equal(cph_signing_new(alg, &k2, &err), 0);
    assert_string_equal(k.alg, alg);
    assert_int_equal(strlen(k.kid), 32);
    assert_int_equal(strspn(k.kid, "0123456789abcdef"), 32);
    assert_string_not_equal(k.kid, k2.kid);
    assert_string_not_equal(k.public_pem, k2.public_pem);
    assert_int_equal(strncmp(k.public_pem, "-----BEGIN PUBLIC KEY-----\n", 27), 0);
    assert_int_equal(strncmp(k.private_pem, "-----BEGIN PRIVATE KEY-----\n", 28), 0);
    assert_non_null(pub = read_pem(k.public_pem, 0));
    assert_non_null(priv = read_pem(k.private_pem, 1));
    assert_int_equal(EVP_PKEY_eq(pub, priv), 1); /* the halves belong together */

    assert_non_null(jwk = cph_signing_jwk(alg, k.kid, k.public_pem, &err));
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), k.kid);
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), alg);
    assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
    if (strcmp(alg, "ES256") == 0) {
        assert_int_equal(json_object_size(jwk), 7);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
        assert_int_equal(b64url_decode(json_string_value(json_object_get(jwk, "x")), bin, sizeof(bin)), 32);
        assert_int_equal(b64url_decode(json_string_value(json_object_get(jwk, "y")), bin, sizeof(bin)), 32);
    } else {
        assert_int_equal(json_object_size(jwk), 6);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
        assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
        assert_int_equal(b64url_decode(json_string_value(json_object_get(jwk, "n")), bin, sizeof(bin)), 256);
        assert_true(bin[0] & 0x80); /* 2048 bits exactly, no leading zero byte */
    }
    assert_non_null(from_jwk = pkey_from_jwk(jwk));
    assert_int_equal(EVP_PKEY_eq(from_jwk, pub), 1);
    assert_int_equal(EVP_PKEY_eq(from_jwk, priv), 1);
    /* and not merely any key of the type */
    EVP_PKEY_free(from_jwk);
    json_decref(jwk);
    assert_non_null(jwk = cph_signing_jwk(alg, k2.kid, k2.public_pem, &err));
    assert_non_null(from_jwk = pkey_from_jwk(jwk));
    assert_int_not_equal(EVP_PKEY_eq(from_jwk, pub), 1);

    EVP_PKEY_free(from_jwk);
    json_decref(jwk);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
    cph_signing_new_clear(&k);
    cph_signing_new_clear(&k2);
    assert_null(k.private_pem);
    assert_null(k.public_pem);
}

static void test_generate_es256(void **state)
{
    (void)state;
    check_generated("ES256");
}

static void test_generate_rs256(void **state)
{
    (void)state;
    check_generated("RS256");
}

static void test_bad_alg_and_pem(void **state)
{
    static const char *const BAD_ALGS[] = {"HS256", "none", "es256", "ES384", "", "RS256 ", NULL};
    cph_signing_new_t es, rs;
    cph_error_t err;
    EVP_PKEY *p384;
    BIO *bio;
    char *pem = NULL, mangled[1024];
    long len;

    (void)state;
    for (int i = 0; BAD_ALGS[i] != NULL; ++i) {
        assert_int_equal(cph_signing_new(BAD_ALGS[i], &es, &err), -1);
        assert_string_equal(err.code, "invalid");
        assert_string_equal(err.path, "/alg");
        assert_null(es.private_pem);
    }
    assert_int_equal(cph_signing_new(NULL, &es, &err), -1);
    assert_int_equal(cph_signing_new("ES256", &es, &err), 0);
    assert_int_equal(cph_signing_new("RS256", &rs, &err), 0);
    /* mismatched algorithm, garbage, truncated, NULL */
    assert_null(cph_signing_jwk("RS256", es.kid, es.public_pem, &err));
    assert_string_equal(err.code, "internal");
    assert_null(cph_signing_jwk("ES256", rs.kid, rs.public_pem, &err));
    assert_null(cph_signing_jwk("HS256", es.kid, es.public_pem, &err));
    assert_null(cph_signing_jwk("ES256", es.kid, "", &err));
    assert_null(cph_signing_jwk("ES256", es.kid, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", &err));
    snprintf(mangled, sizeof(mangled), "%s", es.public_pem);
    mangled[strlen(mangled) / 2] = '\0';
    assert_null(cph_signing_jwk("ES256", es.kid, mangled, &err));
    assert_null(cph_signing_jwk("ES256", es.kid, NULL, &err));
    assert_null(cph_signing_jwk("ES256", NULL, es.public_pem, &err));
    assert_null(cph_signing_jwk("ES256", es.kid, es.private_pem, &err)); /* a private PEM is not a public key */
    /* an EC key on another curve is not ES256 */
    assert_non_null(p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, p384), 1);
    len = BIO_get_mem_data(bio, &pem);
    snprintf(mangled, sizeof(mangled), "%.*s", (int)len, pem);
    assert_null(cph_signing_jwk("ES256", es.kid, mangled, &err));
    BIO_free(bio);
    EVP_PKEY_free(p384);
    cph_signing_new_clear(&es);
    cph_signing_new_clear(&rs);
}

static void test_rotation_body(void **state)
{
    static const struct {
        const char *body;
        const char *code, *path, *alg;
    } CASES[] = {
        {"{}", NULL, NULL, "ES256"},
        {"{\"alg\":\"ES256\"}", NULL, NULL, "ES256"},
        {"{\"alg\":\"RS256\"}", NULL, NULL, "RS256"},
        {"{\"alg\":\"HS256\"}", "invalid", "/alg", NULL},
        {"{\"alg\":\"none\"}", "invalid", "/alg", NULL},
        {"{\"alg\":\"rs256\"}", "invalid", "/alg", NULL},
        {"{\"alg\":\"RS256\\u0000\"}", "invalid", "/alg", NULL},
        {"{\"alg\":null}", "invalid", "/alg", NULL},
        {"{\"alg\":256}", "invalid", "/alg", NULL},
        {"{\"alg\":[\"RS256\"]}", "invalid", "/alg", NULL},
        {"{\"kid\":\"mine\"}", "unknown_field", "/kid", NULL},
        {"{\"alg\":\"ES256\",\"private_pem\":\"x\"}", "unknown_field", "/private_pem", NULL},
        {"[]", "invalid", "", NULL},
        {"\"RS256\"", "invalid", "", NULL},
    };
    cph_error_t err;
    json_error_t jerr;
    const char *alg;

    (void)state;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); ++i) {
        json_t *body = json_loads(CASES[i].body, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        assert_non_null(body);
        memset(&err, 0, sizeof(err));
        if (CASES[i].code == NULL) {
            assert_int_equal(cph_signing_rotation_alg(body, &alg, &err), 0);
            assert_string_equal(alg, CASES[i].alg);
        } else {
            assert_int_equal(cph_signing_rotation_alg(body, &alg, &err), -1);
            assert_string_equal(err.code, CASES[i].code);
            assert_string_equal(err.path, CASES[i].path);
        }
        json_decref(body);
    }
    assert_int_equal(cph_signing_rotation_alg(NULL, &alg, &err), -1);
}

/* ---------------------------------------------------------------- stored keys */

static void test_first_key(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *list, *k;

    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys"), 0);
    assert_int_equal(cph_signing_ensure(fx->db, &err), 0);
    assert_int_equal(cph_signing_ensure(fx->db, &err), 0); /* a second start adds nothing */
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'active' AND alg = 'ES256'"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE entity_type = 'signing_key' AND action = 'create' "
                                   "AND actor = 'system' AND before IS NULL AND version = 1"),
                     1);
    cph_db_lock(fx->db);
    list = cph_signing_list(fx->db, time(NULL), &err);
    cph_db_unlock(fx->db);
    assert_int_equal(json_array_size(list), 1);
    k = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(k, "state")), "active");
    assert_true(json_is_null(json_object_get(k, "retire_after")));
    assert_true(json_is_null(json_object_get(k, "rotated_at")));
    assert_int_equal(json_object_size(k), 8);
    json_decref(list);
    /* the fresh database's first version is the key's write: the bootstrap has nothing left to do */
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    assert_int_equal(count(fx->db, "SELECT max(version) FROM snapshots"), 1);
}

static void test_rotation_lifecycle(void **state)
{
    fixture_t *fx = *state;
    char k1[33], k2[33], k3[33], k4[33];
    json_t *k, *set;

    rotate(fx->db, "ES256", T0, k1);
    assert_string_equal(state_of(fx->db, k1, T0), "active");
    rotate(fx->db, "RS256", T0 + 10, k2);
    k = get(fx->db, k1, T0 + 10);
    assert_string_equal(json_string_value(json_object_get(k, "state")), "retiring");
    assert_string_equal(json_string_value(json_object_get(k, "rotated_at")), "2030-01-01T00:00:10.000Z");
    assert_string_equal(json_string_value(json_object_get(k, "retire_after")), "2030-01-01T00:15:10.000Z"); /* +900 s */
    json_decref(k);
    k = get(fx->db, k2, T0 + 10);
    assert_string_equal(json_string_value(json_object_get(k, "state")), "active");
    assert_string_equal(json_string_value(json_object_get(k, "alg")), "RS256");
    json_decref(k);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'active'"), 1);

    /* published: active first, then retiring - until the last second of retire_after */
    set = jwks(fx->db, T0 + 10 + CPH_ACCESS_TOKEN_MAX_S - 1);
    assert_int_equal(json_array_size(json_object_get(set, "keys")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(set, "keys"), 0), "kid")), k2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(set, "keys"), 1), "kid")), k1);
    json_decref(set);
    assert_string_equal(state_of(fx->db, k1, T0 + 10 + CPH_ACCESS_TOKEN_MAX_S - 1), "retiring");
    /* then retired on read, though still stored as retiring */
    assert_string_equal(state_of(fx->db, k1, T0 + 10 + CPH_ACCESS_TOKEN_MAX_S), "retired");
    set = jwks(fx->db, T0 + 10 + CPH_ACCESS_TOKEN_MAX_S);
    assert_int_equal(json_array_size(json_object_get(set, "keys")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(set, "keys"), 0), "kid")), k2);
    json_decref(set);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'retiring'"), 1);

    /* two quick rotations: both previous keys stay published; the long-expired one is now stored retired */
    rotate(fx->db, "ES256", T0 + 2000, k3);
    rotate(fx->db, "ES256", T0 + 2001, k4);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'retired'"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'retiring'"), 2);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'active'"), 1);
    assert_string_equal(state_of(fx->db, k1, T0 + 2001), "retired");
    assert_string_equal(state_of(fx->db, k2, T0 + 2001), "retiring");
    assert_string_equal(state_of(fx->db, k3, T0 + 2001), "retiring");
    assert_string_equal(state_of(fx->db, k4, T0 + 2001), "active");
    set = jwks(fx->db, T0 + 2001);
    assert_int_equal(json_array_size(json_object_get(set, "keys")), 3);
    json_decref(set);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE entity_type = 'signing_key' AND action = 'rotate'"), 3);
}

static void test_one_active(void **state)
{
    fixture_t *fx = *state;
    char kid[33];
    cph_error_t err;

    rotate(fx->db, "ES256", T0, kid);
    rotate(fx->db, "ES256", T0 + 1, kid);
    /* the schema itself refuses a second active key */
    cph_db_lock(fx->db);
    assert_int_not_equal(sqlite3_exec(cph_db_handle(fx->db),
                                      "UPDATE signing_keys SET state = 'active', rotated_at = NULL, "
                                      "retire_after = NULL WHERE state = 'retiring'",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    cph_db_unlock(fx->db);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE state = 'active'"), 1);
    assert_int_equal(cph_signing_ensure(fx->db, &err), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys"), 2);
}

static void test_lookups(void **state)
{
    static const char *const MISSING[] = {"rotate",      "999", "0",
                                          "' OR 1=1 --", "%",   "00000000000000000000000000000000",
                                          "1 OR 1",      "-1",  "123456789012345678901234567890",
                                          NULL};
    fixture_t *fx = *state;
    char kid[33];
    cph_error_t err;
    json_t *a, *b;

    rotate(fx->db, "ES256", T0, kid);
    a = get(fx->db, kid, T0);
    b = get(fx->db, "1", T0);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    for (int i = 0; MISSING[i] != NULL; ++i) {
        cph_db_lock(fx->db);
        a = cph_signing_get(fx->db, MISSING[i], T0, &err);
        cph_db_unlock(fx->db);
        assert_null(a);
        assert_string_equal(err.code, "not_found");
    }
}

static void test_private_never_shown(void **state)
{
    fixture_t *fx = *state;
    char kid[33], *text;
    cph_error_t err;
    json_t *all, *one, *set;
    sqlite3_stmt *st = NULL;

    assert_int_equal(cph_signing_ensure(fx->db, &err), 0);
    rotate(fx->db, "RS256", time(NULL), kid);
    rotate(fx->db, "ES256", time(NULL), kid);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM signing_keys WHERE private_pem LIKE '%PRIVATE KEY%'"), 3);
    cph_db_lock(fx->db);
    all = cph_signing_list(fx->db, time(NULL), &err);
    one = cph_signing_get(fx->db, kid, time(NULL), &err);
    set = cph_signing_jwks(fx->db, time(NULL), &err);
    cph_db_unlock(fx->db);
    assert_int_equal(json_array_size(all), 3);
    json_t *parts[] = {all, one, set};
    for (int i = 0; i < 3; ++i) {
        assert_non_null(text = json_dumps(parts[i], 0));
        assert_no_private(fx->db, text);
        assert_null(strstr(text, "\"d\"")); /* nor any private JWK member */
        free(text);
        json_decref(parts[i]);
    }
    cph_db_lock(fx->db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(fx->db),
                                        "SELECT coalesce(before, '') || coalesce(after, '') FROM audit WHERE entity_type = "
                                        "'signing_key'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    cph_db_unlock(fx->db);
    int rows = 0;
    while (1) {
        cph_db_lock(fx->db);
        int rc = sqlite3_step(st);
        char *row = rc == SQLITE_ROW ? strdup((const char *)sqlite3_column_text(st, 0)) : NULL;
        cph_db_unlock(fx->db);
        if (row == NULL)
            break;
        assert_non_null(strstr(row, "\"jwk\"")); /* the audit does record the public key */
        assert_no_private(fx->db, row);
        free(row);
        ++rows;
    }
    sqlite3_finalize(st);
    assert_int_equal(rows, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_es256),
        cmocka_unit_test(test_generate_rs256),
        cmocka_unit_test(test_bad_alg_and_pem),
        cmocka_unit_test(test_rotation_body),
        cmocka_unit_test_setup_teardown(test_first_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_never_shown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
