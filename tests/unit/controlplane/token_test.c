/*
 * token_test: access tokens issued by controlplane/token.c - the header (alg pinned to the key, typ, kid), every
 * claim with its exact JSON type (sub a decimal string, iat/nbf/exp integers, roles/groups arrays, su only for
 * superusers, aud only when configured), the TTL clamp at CPH_ACCESS_TOKEN_MAX_S, a random jti, ES256 signatures in
 * JOSE form (64 bytes) and RS256 keys; and cph_token_verify_own(), which must accept our own tokens (also from a
 * retiring key) and refuse forged ones: tampered payloads, alg none, HS256 signed with our public PEM, a header alg
 * other than the key's, unknown kids, malformed tokens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include <jwt.h>
#include <openssl/evp.h>
#include "controlplane/settings.h"
#include "controlplane/signing.h"
#include "controlplane/token.h"

static int setup(void **state)
{
    cph_auth_settings_t s;
    cph_error_t err;

    cph_settings_auth_defaults(&s);
    cph_settings_set_auth(&s);
    db_fixture_setup(state, "token-test");
    assert_int_equal(cph_signing_ensure(((fixture_t *)*state)->db, &err), 0);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    char buf[8192];
    size_t m;
    int len;

    if (n + 4 >= sizeof(buf) || n % 4 == 1 || (n + 3) / 4 * 3 > cap)
        return -1;
    for (size_t i = 0; i < n; ++i)
        buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    for (m = n; m % 4 != 0; ++m)
        buf[m] = '=';
    if ((len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)m)) < 0)
        return -1;
    return len - (int)(m - n);
}

static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    while (len > 0 && out[len - 1] == '=')
        --len;
    out[len] = '\0';
    for (int i = 0; i < len; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

/* Segment i (0 header, 1 payload) of a JWT as JSON. */
static json_t *segment(const char *jwt, int i)
{
    const char *start = jwt, *dot;
    unsigned char raw[8192];
    int n;

    while (i-- > 0)
        start = strchr(start, '.') + 1;
    dot = strchr(start, '.');
    n = b64url_decode(start, (size_t)(dot - start), raw, sizeof(raw));
    assert_true(n > 0);
    return json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
}

static cph_signing_new_t active_key(cph_db_t *db)
{
    cph_signing_new_t k;
    cph_error_t err;

    cph_db_lock(db);
    assert_int_equal(cph_signing_active(db, &k, &err), 0);
    cph_db_unlock(db);
    return k;
}

static char *issue(cph_db_t *db, int superuser, int ttl, int64_t now, cph_token_t *t)
{
    json_t *roles = json_pack("[s, s]", "reader", "writer"), *groups = json_pack("[s]", "staff");
    cph_token_claims_t c = {42, "alice", "shop", roles, groups, superuser};
    cph_signing_new_t k = active_key(db);
    char jti[33];
    cph_error_t err;

    assert_int_equal(cph_token_new_jti(jti), 0);
    assert_int_equal(cph_token_issue(&k, &c, jti, now, ttl, t, &err), 0);
    assert_string_equal(t->jti, jti);
    cph_signing_new_clear(&k);
    json_decref(roles);
    json_decref(groups);
    return t->jwt;
}

static int verify(cph_db_t *db, const char *jwt, char *jti, int64_t *exp)
{
    cph_error_t err = {0};
    int ret;

    cph_db_lock(db);
    ret = cph_token_verify_own(db, jwt, (int64_t)time(NULL), jti, exp, &err);
    cph_db_unlock(db);
    if (ret != 0)
        assert_string_equal(err.code, "invalid_token");
    return ret;
}

static int on_rotate(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    return cph_signing_rotate(db, p, time(NULL), change, err);
}

static void rotate(cph_db_t *db, const char *alg)
{
    cph_signing_new_t k;
    cph_error_t err;
    uint64_t v;

    assert_int_equal(cph_signing_new(alg, &k, &err), 0);
    assert_int_equal(cph_db_write(db, "test", on_rotate, &k, &v, &err), 0);
    cph_signing_new_clear(&k);
}

/* ---------------------------------------------------------------- issuing */

static void test_claims(void **state)
{
    fixture_t *fx = *state;
    cph_token_t t;
    cph_signing_new_t k = active_key(fx->db);
    json_t *h, *p;
    const char *sig;
    unsigned char raw[512];

    issue(fx->db, 0, 300, 1900000000, &t);
    h = segment(t.jwt, 0);
    p = segment(t.jwt, 1);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), k.kid);
    assert_string_equal(json_string_value(json_object_get(p, "iss")), "cephalo");
    assert_null(json_object_get(p, "aud"));
    assert_string_equal(json_string_value(json_object_get(p, "sub")), "42");
    assert_string_equal(json_string_value(json_object_get(p, "sys")), "shop");
    assert_string_equal(json_string_value(json_object_get(p, "name")), "alice");
    assert_int_equal(json_array_size(json_object_get(p, "roles")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "roles"), 0)), "reader");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "roles"), 1)), "writer");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "groups"), 0)), "staff");
    assert_null(json_object_get(p, "su"));
    assert_true(json_is_integer(json_object_get(p, "iat")) && json_is_integer(json_object_get(p, "nbf")) &&
                json_is_integer(json_object_get(p, "exp")));
    assert_int_equal(json_integer_value(json_object_get(p, "iat")), 1900000000);
    assert_int_equal(json_integer_value(json_object_get(p, "nbf")), 1900000000);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")), 1900000300);
    assert_int_equal(strlen(json_string_value(json_object_get(p, "jti"))), 32);
    assert_int_equal(strspn(json_string_value(json_object_get(p, "jti")), "0123456789abcdef"), 32);
    assert_string_equal(json_string_value(json_object_get(p, "jti")), t.jti);
    assert_int_equal(t.exp - t.iat, 300);
    sig = strrchr(t.jwt, '.') + 1;
    assert_int_equal(b64url_decode(sig, strlen(sig), raw, sizeof(raw)), 64); /* JOSE r||s, not DER */
    json_decref(h);
    json_decref(p);
    cph_token_clear(&t);
    cph_signing_new_clear(&k);
}

static void test_signature_verifies_with_libjwt(void **state)
{
    fixture_t *fx = *state;
    cph_signing_new_t k = active_key(fx->db);
    cph_token_t t;
    jwt_t *d = NULL;

    issue(fx->db, 1, 300, (int64_t)time(NULL), &t);
    assert_int_equal(jwt_decode(&d, t.jwt, (const unsigned char *)k.public_pem, (int)strlen(k.public_pem)), 0);
    assert_int_equal(jwt_get_alg(d), JWT_ALG_ES256);
    assert_int_equal(jwt_get_grant_bool(d, "su"), 1);
    jwt_free(d);
    /* a flipped payload byte breaks the signature */
    t.jwt[strchr(t.jwt, '.') - t.jwt + 5] ^= 1;
    d = NULL;
    assert_int_not_equal(jwt_decode(&d, t.jwt, (const unsigned char *)k.public_pem, (int)strlen(k.public_pem)), 0);
    jwt_free(d);
    cph_token_clear(&t);
    cph_signing_new_clear(&k);
}

static void test_ttl_clamped_and_audience(void **state)
{
    fixture_t *fx = *state;
    cph_auth_settings_t s;
    cph_token_t t;
    json_t *p;

    issue(fx->db, 0, 100000, 1900000000, &t);
    assert_int_equal(t.exp - t.iat, CPH_ACCESS_TOKEN_MAX_S);
    cph_token_clear(&t);
    cph_settings_auth_defaults(&s);
    strcpy(s.audience, "shop-api");
    strcpy(s.issuer, "https://id.example");
    cph_settings_set_auth(&s);
    issue(fx->db, 0, 0, 1900000000, &t);
    assert_int_equal(t.exp - t.iat, 1);
    p = segment(t.jwt, 1);
    assert_string_equal(json_string_value(json_object_get(p, "aud")), "shop-api");
    assert_string_equal(json_string_value(json_object_get(p, "iss")), "https://id.example");
    json_decref(p);
    cph_token_clear(&t);
    cph_settings_auth_defaults(&s);
    cph_settings_set_auth(&s);
}

static void test_jti_random(void **state)
{
    fixture_t *fx = *state;
    cph_token_t a, b;

    issue(fx->db, 0, 300, 1900000000, &a);
    issue(fx->db, 0, 300, 1900000000, &b);
    assert_string_not_equal(a.jti, b.jti);
    assert_string_not_equal(a.jwt, b.jwt);
    cph_token_clear(&a);
    cph_token_clear(&b);
}

static void test_issue_refuses_bad_input(void **state)
{
    fixture_t *fx = *state;
    cph_signing_new_t k = active_key(fx->db);
    json_t *arr = json_array();
    cph_token_claims_t c = {1, "bob", "shop", arr, arr, 0};
    cph_token_t t;
    cph_error_t err;

    assert_int_equal(cph_token_issue(&k, &c, "short", 1, 300, &t, &err), -1);
    assert_null(t.jwt);
    strcpy(k.alg, "HS256");
    assert_int_equal(cph_token_issue(&k, &c, "0123456789abcdef0123456789abcdef", 1, 300, &t, &err), -1);
    strcpy(k.alg, "none");
    assert_int_equal(cph_token_issue(&k, &c, "0123456789abcdef0123456789abcdef", 1, 300, &t, &err), -1);
    assert_string_equal(err.code, "internal");
    json_decref(arr);
    cph_signing_new_clear(&k);
}

/* ---------------------------------------------------------------- verifying */

static void test_verify_own(void **state)
{
    fixture_t *fx = *state;
    char jti[CPH_TOKEN_JTI_MAX + 1];
    int64_t exp = 0, now = (int64_t)time(NULL);
    cph_token_t t;
    json_t *h;

    issue(fx->db, 0, 300, now, &t);
    assert_int_equal(verify(fx->db, t.jwt, jti, &exp), 0);
    assert_string_equal(jti, t.jti);
    assert_int_equal(exp, now + 300);
    /* still ours after a rotation (the old key is retiring), also with an RS256 key active */
    rotate(fx->db, "RS256");
    assert_int_equal(verify(fx->db, t.jwt, jti, &exp), 0);
    cph_token_clear(&t);
    issue(fx->db, 0, 300, now, &t);
    h = segment(t.jwt, 0);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    json_decref(h);
    assert_int_equal(verify(fx->db, t.jwt, jti, &exp), 0);
    assert_string_equal(jti, t.jti);
    cph_token_clear(&t);
}

/* A token with the given header and payload JSON and a signature segment sig. */
static char *forge(const char *header, const char *payload, const char *sig)
{
    char h[1024], p[1024], *out = malloc(4096);

    b64url_encode((const unsigned char *)header, strlen(header), h);
    b64url_encode((const unsigned char *)payload, strlen(payload), p);
    snprintf(out, 4096, "%s.%s.%s", h, p, sig);
    return out;
}

static void test_verify_refuses_forgeries(void **state)
{
    fixture_t *fx = *state;
    cph_signing_new_t k = active_key(fx->db);
    char jti[CPH_TOKEN_JTI_MAX + 1], hdr[256], *tok, *big;
    int64_t exp;
    cph_token_t t;
    jwt_t *j = NULL;

    /* tampered payload */
    issue(fx->db, 0, 300, (int64_t)time(NULL), &t);
    t.jwt[strchr(t.jwt, '.') - t.jwt + 3] ^= 1;
    assert_int_equal(verify(fx->db, t.jwt, jti, &exp), -1);
    cph_token_clear(&t);
    /* alg none, with and without a signature */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k.kid);
    tok = forge(hdr, "{\"jti\":\"abc\",\"exp\":9999999999}", "");
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    tok = forge(hdr, "{\"jti\":\"abc\",\"exp\":9999999999}", "AAAA");
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    /* HS256 keyed with our public PEM (the classic algorithm confusion) */
    assert_int_equal(jwt_new(&j), 0);
    jwt_add_header(j, "kid", k.kid);
    jwt_add_grant(j, "jti", "abc");
    jwt_add_grant_int(j, "exp", 9999999999);
    assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)k.public_pem, (int)strlen(k.public_pem)), 0);
    tok = jwt_encode_str(j);
    assert_non_null(tok);
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    jwt_free(j);
    /* header alg other than the key's (RS256 on an ES256 kid), unknown kid, no kid */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k.kid);
    tok = forge(hdr, "{\"jti\":\"abc\",\"exp\":9999999999}", "AAAA");
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    tok = forge("{\"alg\":\"ES256\",\"kid\":\"00000000000000000000000000000000\"}", "{\"jti\":\"a\",\"exp\":1}", "AAAA");
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    tok = forge("{\"alg\":\"ES256\"}", "{\"jti\":\"a\",\"exp\":1}", "AAAA");
    assert_int_equal(verify(fx->db, tok, jti, &exp), -1);
    free(tok);
    /* malformed */
    const char *bad[] = {"", ".", "..", "a.b", "a..c", "a.b.c.d", "!!!.b.c", "eyJ9.e30.AAAA", "e30.e30.AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        assert_int_equal(verify(fx->db, bad[i], jti, &exp), -1);
    big = malloc(100001);
    memset(big, 'a', 100000);
    big[100000] = '\0';
    big[10] = big[20] = '.';
    assert_int_equal(verify(fx->db, big, jti, &exp), -1);
    free(big);
    cph_signing_new_clear(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_verifies_with_libjwt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_clamped_and_audience, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_refuses_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_forgeries, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
