/*
 * auth_compile_test: the parts of compile/auth.c beyond the JWKS (auth_test.c has those): body "auth" with its
 * defaults, "api_keys" and "revoked" turned into sorted tables found by binary search whatever order the body has,
 * and each key's PEM for libjwt equal to the key. Values no compiler may trust are refused with their pointer, by
 * the validator through cph_snapshot_build, and by cph_auth_compile itself when it is handed an unvalidated body.
 * Nothing leaks (ASan).
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
#include <openssl/pem.h>
#include "dataplane/compile/auth.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/snapshot.h"

#define EPOCH "0123456789abcdef0123456789abcdef"
#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define NKEYS 300

static EVP_PKEY *ec_key, *rsa_key;

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (body == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    return body;
}

/* {"services":[],"routes":[], <extra>} through cph_snapshot_build. */
static cph_snapshot_t *build(const char *extra, cph_error_t *err)
{
    char *text, hash[CPH_HASH_SIZE] = "";
    json_t *body;
    cph_snapshot_t *snap;

    assert_true(asprintf(&text, "{\"services\":[],\"routes\":[]%s%s}", extra[0] != '\0' ? "," : "", extra) > 0);
    body = parse(text);
    free(text);
    memset(err, 0, sizeof(*err));
    snap = cph_snapshot_build(body, EPOCH, 1, hash, "cp", err);
    json_decref(body);
    return snap;
}

/* cph_auth_compile alone on an unvalidated body: 0 or -1, everything freed. */
static int compile_only(const char *text, cph_error_t *err)
{
    cph_snapshot_t snap;
    json_t *body = parse(text);
    int ret;

    memset(&snap, 0, sizeof(snap));
    memset(err, 0, sizeof(*err));
    cph_arena_init(&snap.arena);
    ret = cph_auth_compile(&snap, body, err);
    cph_auth_dispose(snap.auth);
    cph_arena_dispose(&snap.arena);
    json_decref(body);
    return ret;
}

static void assert_iov(h2o_iovec_t v, const char *s)
{
    assert_non_null(v.base);
    assert_int_equal(v.len, strlen(s));
    assert_memory_equal(v.base, s, v.len);
    assert_int_equal(v.base[v.len], '\0');
}

static void test_settings(void **state)
{
    const cph_auth_settings_t *s;
    cph_error_t err;
    cph_snapshot_t *snap;

    (void)state;
    /* absent: every default */
    assert_non_null(snap = build("", &err));
    s = cph_auth_settings(snap->auth);
    assert_iov(s->issuer, "cephalo");
    assert_null(s->audience.base);
    assert_int_equal(s->leeway_s, 30);
    assert_int_equal(s->max_token_bytes, 8192);
    assert_iov(s->header_prefix, "x-cephalo-");
    assert_int_equal(snap->auth->num_api_keys, 0);
    assert_null(cph_auth_find_api_key(snap->auth, "0a1b2c3d", 8));
    assert_int_equal(cph_auth_jti_revoked(snap->auth, "a", 1), 0);
    assert_int_equal(cph_auth_user_revoked(snap->auth, 1, 0), 0);
    cph_snapshot_release(snap);
    /* the defaults without a snapshot */
    s = cph_auth_settings(NULL);
    assert_iov(s->issuer, "cephalo");
    assert_int_equal(s->max_token_bytes, 8192);
    assert_null(cph_auth_find_api_key(NULL, "0a1b2c3d", 8));
    assert_int_equal(cph_auth_jti_revoked(NULL, "a", 1), 0);
    assert_int_equal(cph_auth_user_revoked(NULL, 1, 0), 0);
    /* every member set */
    snap = build("\"auth\":{\"issuer\":\"https://id.example\",\"audience\":\"gw\",\"leeway_s\":0,\"max_token_bytes\":256,"
                 "\"header_prefix\":\"x-gw-\",\"api\":\"http://127.0.0.1:8002\"}",
                 &err);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    s = cph_auth_settings(snap->auth);
    assert_iov(s->issuer, "https://id.example");
    assert_iov(s->audience, "gw");
    assert_int_equal(s->leeway_s, 0);
    assert_int_equal(s->max_token_bytes, 256);
    assert_iov(s->header_prefix, "x-gw-");
    cph_snapshot_release(snap);
    /* some members: the others default */
    assert_non_null(snap = build("\"auth\":{\"audience\":null,\"leeway_s\":300,\"max_token_bytes\":65536}", &err));
    s = cph_auth_settings(snap->auth);
    assert_iov(s->issuer, "cephalo");
    assert_null(s->audience.base);
    assert_int_equal(s->leeway_s, 300);
    assert_int_equal(s->max_token_bytes, 65536);
    assert_iov(s->header_prefix, "x-cephalo-");
    cph_snapshot_release(snap);
}

/* NKEYS API keys in reverse order of prefix: every one is found with its own fields, near misses are not. */
static void test_api_keys_lookup(void **state)
{
    size_t cap = 200 * NKEYS + 64, o = 0;
    char *extra = malloc(cap), prefix[16];
    const cph_api_key_t *k;
    cph_error_t err;
    cph_snapshot_t *snap;
    int i;

    (void)state;
    assert_non_null(extra);
    o += (size_t)snprintf(extra + o, cap - o, "\"api_keys\":[");
    for (i = NKEYS; i-- > 0;)
        o += (size_t)snprintf(extra + o, cap - o,
                              "%s{\"id\":%d,\"prefix\":\"%08x\",\"secret_sha256\":\"" HEX64
                              "\",\"system\":\"s%d\",\"roles\":[\"r%d\"],"
                              "\"groups\":[],\"expires_at\":%s}",
                              i == NKEYS - 1 ? "" : ",", i + 1, (unsigned)i * 16 + 0xa0, i, i, i % 2 ? "1800000000" : "null");
    snprintf(extra + o, cap - o, "]");
    snap = build(extra, &err);
    free(extra);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_int_equal(snap->auth->num_api_keys, NKEYS);
    for (i = 0; i != NKEYS; ++i) {
        char sys[16], role[16], id[16];
        snprintf(prefix, sizeof(prefix), "%08x", (unsigned)i * 16 + 0xa0);
        snprintf(sys, sizeof(sys), "s%d", i), snprintf(role, sizeof(role), "r%d", i), snprintf(id, sizeof(id), "%d", i + 1);
        assert_non_null(k = cph_auth_find_api_key(snap->auth, prefix, 8));
        assert_int_equal(k->id, i + 1);
        assert_iov(k->id_str, id);
        assert_iov(k->prefix, prefix);
        assert_iov(k->system, sys);
        assert_int_equal(k->num_roles, 1);
        assert_iov(k->roles[0], role);
        assert_int_equal(k->num_groups, 0);
        assert_int_equal(k->expires_at, i % 2 ? 1800000000 : 0);
        assert_int_equal(k->secret_sha256[0], 0x00);
        assert_int_equal(k->secret_sha256[1], 0x11);
        assert_int_equal(k->secret_sha256[31], 0xff);
        snprintf(prefix, sizeof(prefix), "%08x", (unsigned)i * 16 + 0xa1);
        assert_null(cph_auth_find_api_key(snap->auth, prefix, 8));
        snprintf(prefix, sizeof(prefix), "%08x0", (unsigned)i * 16 + 0xa0);
        assert_null(cph_auth_find_api_key(snap->auth, prefix, 9));
        assert_null(cph_auth_find_api_key(snap->auth, prefix, 7));
    }
    for (i = 1; i != NKEYS; ++i)
        assert_true(memcmp(snap->auth->api_keys[i - 1].prefix.base, snap->auth->api_keys[i].prefix.base, 8) < 0);
    assert_null(cph_auth_find_api_key(snap->auth, "", 0));
    cph_snapshot_release(snap);
}

static void test_revoked_lookup(void **state)
{
    size_t cap = 120 * NKEYS + 64, o = 0;
    char *extra = malloc(cap), jti[32];
    cph_error_t err;
    cph_snapshot_t *snap;
    int i;

    (void)state;
    assert_non_null(extra);
    o += (size_t)snprintf(extra + o, cap - o, "\"revoked\":{\"users\":[");
    for (i = NKEYS; i-- > 0;)
        o += (size_t)snprintf(extra + o, cap - o, "%s{\"id\":%d,\"before\":%d}", i == NKEYS - 1 ? "" : ",", 3 * i + 1, 1000 + i);
    o += (size_t)snprintf(extra + o, cap - o, "],\"tokens\":[");
    for (i = NKEYS; i-- > 0;)
        o += (size_t)snprintf(extra + o, cap - o, "%s{\"jti\":\"j%dx\",\"exp\":1800000000}", i == NKEYS - 1 ? "" : ",", i);
    snprintf(extra + o, cap - o, "]}");
    snap = build(extra, &err);
    free(extra);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_int_equal(snap->auth->num_revoked_users, NKEYS);
    assert_int_equal(snap->auth->num_revoked_jtis, NKEYS);
    for (i = 0; i != NKEYS; ++i) {
        assert_int_equal(cph_auth_user_revoked(snap->auth, 3 * i + 1, 1000 + i), 1);
        assert_int_equal(cph_auth_user_revoked(snap->auth, 3 * i + 1, 0), 1);
        assert_int_equal(cph_auth_user_revoked(snap->auth, 3 * i + 1, 1001 + i), 0);
        assert_int_equal(cph_auth_user_revoked(snap->auth, 3 * i + 2, 0), 0);
        snprintf(jti, sizeof(jti), "j%dx", i);
        assert_int_equal(cph_auth_jti_revoked(snap->auth, jti, strlen(jti)), 1);
        assert_int_equal(cph_auth_jti_revoked(snap->auth, jti, strlen(jti) - 1), 0);
        snprintf(jti, sizeof(jti), "j%dy", i);
        assert_int_equal(cph_auth_jti_revoked(snap->auth, jti, strlen(jti)), 0);
    }
    cph_snapshot_release(snap);
}

static char *b64url_param(const EVP_PKEY *pkey, const char *name, int pad)
{
    unsigned char bin[600];
    char *out = malloc(900);
    BIGNUM *bn = NULL;
    int n, len;

    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    assert_int_equal(BN_bn2binpad(bn, bin, n), n);
    len = EVP_EncodeBlock((unsigned char *)out, bin, n);
    while (len > 0 && out[len - 1] == '=')
        --len;
    out[len] = '\0';
    for (int i = 0; i < len; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    BN_free(bn);
    return out;
}

/* Each key's PEM reads back (as libjwt reads it) into the very key. */
static void test_pem(void **state)
{
    char *x = b64url_param(ec_key, OSSL_PKEY_PARAM_EC_PUB_X, 32), *y = b64url_param(ec_key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    char *n = b64url_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, 0), *e = b64url_param(rsa_key, OSSL_PKEY_PARAM_RSA_E, 0), *extra;
    cph_error_t err;
    cph_snapshot_t *snap;

    (void)state;
    assert_true(
        asprintf(&extra,
                 "\"keys\":[{\"kid\":\"a\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\","
                 "\"y\":\"%s\"},{\"kid\":\"b\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}]",
                 x, y, n, e) > 0);
    snap = build(extra, &err);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    for (size_t i = 0; i != 2; ++i) {
        const cph_auth_key_t *k = &snap->auth->keys[i];
        BIO *bio = BIO_new_mem_buf(k->pem.base, (int)k->pem.len);
        EVP_PKEY *back = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        assert_non_null(back);
        assert_int_equal(strlen(k->pem.base), k->pem.len);
        assert_non_null(strstr(k->pem.base, "-----BEGIN PUBLIC KEY-----"));
        assert_null(strstr(k->pem.base, "PRIVATE"));
        assert_int_equal(EVP_PKEY_eq(back, i == 0 ? ec_key : rsa_key), 1);
        EVP_PKEY_free(back);
        BIO_free(bio);
    }
    cph_snapshot_release(snap);
    free(x), free(y), free(n), free(e), free(extra);
}

/* Refused by the validator or the compiler (through cph_snapshot_build): the pointer names the value. */
static void test_refused(void **state)
{
    static const struct {
        const char *extra, *path;
    } cases[] = {
        {"\"auth\":{\"leeway_s\":301}", "/auth/leeway_s"},
        {"\"auth\":{\"leeway_s\":1.5}", "/auth/leeway_s"},
        {"\"auth\":{\"max_token_bytes\":255}", "/auth/max_token_bytes"},
        {"\"auth\":{\"max_token_bytes\":65537}", "/auth/max_token_bytes"},
        {"\"auth\":{\"header_prefix\":\"x-cephalo\"}", "/auth/header_prefix"},
        {"\"auth\":{\"header_prefix\":\"X-Cephalo-\"}", "/auth/header_prefix"},
        {"\"auth\":{\"issuer\":\"\"}", "/auth/issuer"},
        {"\"auth\":{\"audience\":7}", "/auth/audience"},
        {"\"auth\":[]", "/auth"},
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"0A1B2C3D\",\"secret_sha256\":\"" HEX64
         "\",\"system\":\"s\",\"roles\":[],\"groups\":[],"
         "\"expires_at\":null}]",
         "/api_keys/0/prefix"},
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64 "0\",\"system\":\"s\",\"roles\":[],"
         "\"groups\":[],\"expires_at\":null}]",
         "/api_keys/0/secret_sha256"},
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64 "\",\"system\":\"s\",\"roles\":[\"a b\"],"
         "\"groups\":[],\"expires_at\":null}]",
         "/api_keys/0/roles/0"},
        {"\"revoked\":{\"users\":[{\"id\":0,\"before\":1}],\"tokens\":[]}", "/revoked/users/0/id"},
        {"\"revoked\":{\"users\":[],\"tokens\":[{\"jti\":\"a.b\",\"exp\":1}]}", "/revoked/tokens/0/jti"},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        cph_error_t err;
        cph_snapshot_t *snap = build(cases[i].extra, &err);
        if (snap != NULL)
            fail_msg("case %zu accepted", i);
        if (strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu: expected %s, got %s at %s (%s)", i, cases[i].path, err.code, err.path, err.msg);
    }
}

/* cph_auth_compile alone: what a validator bug would let through is still refused, and a valid body still compiles. */
static void test_compile_defends(void **state)
{
    static const struct {
        const char *body, *path;
    } cases[] = {
        {"{\"auth\":{\"leeway_s\":-1}}", "/auth/leeway_s"},
        {"{\"auth\":{\"header_prefix\":\"x-\\r\\n-\"}}", "/auth/header_prefix"},
        {"{\"auth\":{\"issuer\":\"a\\u0001\"}}", "/auth/issuer"},
        {"{\"api_keys\":{}}", "/api_keys"},
        {"{\"api_keys\":[7]}", "/api_keys/0"},
        {"{\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"system\":\"s\"}]}", "/api_keys/0/secret_sha256"},
        {"{\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64 "\"}]}", "/api_keys/0"},
        {"{\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64 "\",\"system\":\"s\"},"
         "{\"id\":2,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64 "\",\"system\":\"s\"}]}",
         "/api_keys"},
        {"{\"revoked\":{\"users\":[{\"id\":5,\"before\":1},{\"id\":5,\"before\":2}]}}", "/revoked/users"},
        {"{\"revoked\":{\"users\":[{\"id\":5}]}}", "/revoked/users/0"},
        {"{\"revoked\":{\"tokens\":[{\"jti\":\"a\"},{\"jti\":\"a\"}]}}", "/revoked/tokens"},
        {"{\"revoked\":{\"tokens\":[{}]}}", "/revoked/tokens/0/jti"},
        {"{\"revoked\":[]}", "/revoked"},
        {"{\"keys\":[{\"kid\":\"k\",\"alg\":\"HS256\",\"kty\":\"oct\"}]}", "/keys/0"},
    };
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        if (compile_only(cases[i].body, &err) == 0)
            fail_msg("case %zu accepted", i);
        if (strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu: expected %s, got %s at %s (%s)", i, cases[i].path, err.code, err.path, err.msg);
    }
    assert_int_equal(compile_only("{\"api_keys\":[{\"id\":1,\"prefix\":\"0a1b2c3d\",\"secret_sha256\":\"" HEX64
                                  "\",\"system\":\"s\"}],"
                                  "\"revoked\":{\"users\":[{\"id\":5,\"before\":1}],\"tokens\":[{\"jti\":\"a\"}]}}",
                                  &err),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings), cmocka_unit_test(test_api_keys_lookup), cmocka_unit_test(test_revoked_lookup),
        cmocka_unit_test(test_pem),      cmocka_unit_test(test_refused),         cmocka_unit_test(test_compile_defends),
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
