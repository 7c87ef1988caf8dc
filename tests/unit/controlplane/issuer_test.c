/*
 * issuer_test: the external issuers on the control plane - store_issuer.c (validation, CRUD, the snapshot section),
 * jwks_import.c (hostile JWKS documents) and sync_jwks.c (applying a document: keys written through cph_db_write
 * only when they change, last-known-good kept on failure, the fetch's refusals).
 *
 * Keys are real (OpenSSL RSA 2048 and EC P-256); every snapshot the tests produce is also built by the data plane's
 * cph_snapshot_build, so what the control plane ships is what the data plane accepts.
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
#include "db_fixture.h"
#include "controlplane/jwks_import.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_system.h"
#include "controlplane/sync_jwks.h"
#include "dataplane/core/snapshot.h"

static EVP_PKEY *rsa, *ec;
static char rsa_n[800], rsa_e[16], ec_x[64], ec_y[64];

/* ---------------------------------------------------------------- keys and documents */

static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

    while (n > 0 && out[n - 1] == '=')
        --n;
    out[n] = '\0';
    for (int i = 0; i < n; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

/* A bignum parameter as base64url, left-padded with zero bytes to pad (0: its own length), lead extra zero bytes. */
static void param(const EVP_PKEY *pkey, const char *name, int pad, int lead, char *out)
{
    unsigned char bin[600] = {0};
    BIGNUM *bn = NULL;
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    assert_int_equal(BN_bn2binpad(bn, bin + lead, n), n);
    b64url(bin, (size_t)(n + lead), out);
    BN_free(bn);
}

/* {"keys": [<keys>]} */
static char *doc(const char *keys)
{
    char *out;

    assert_true(asprintf(&out, "{\"keys\":[%s]}", keys) > 0);
    return out;
}

static char *rsa_jwk(const char *kid, const char *extra)
{
    char *out;

    assert_true(asprintf(&out, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, rsa_n, rsa_e, extra) > 0);
    return out;
}

static char *ec_jwk(const char *kid, const char *extra)
{
    char *out;

    assert_true(asprintf(&out, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", kid, ec_x, ec_y,
                         extra) > 0);
    return out;
}

/* Imports text; returns the number of keys (or -1) and the keys in *keys (may be NULL: freed). */
static int import(const char *text, json_t **keys)
{
    json_t *k = NULL;
    char why[256] = "";
    int r = cph_jwks_import(text, strlen(text), &k, why, sizeof(why));

    if (r != 0) {
        assert_null(k);
        assert_true(why[0] != '\0');
    }
    r = r == 0 ? (int)json_array_size(k) : -1;
    if (keys != NULL)
        *keys = k;
    else
        json_decref(k);
    return r;
}

/* ---------------------------------------------------------------- jwks_import */

static void test_import_keeps_public_signing_keys(void **state)
{
    char *r = rsa_jwk("r1", ",\"use\":\"sig\",\"alg\":\"RS256\",\"x5c\":[\"AAAA\"],\"d\":\"AQAB\",\"p\":\"AQAB\",\"q\":\"AQAB\""),
         *e = ec_jwk("e1", ",\"d\":\"AQAB\""), *d = NULL, *text;
    json_t *keys, *k;
    char n0[800];

    (void)state;
    text = doc((asprintf(&d, "%s,%s", r, e), d));
    assert_int_equal(import(text, &keys), 2);
    /* sorted by kid, exactly our members: private parts never copied */
    k = json_array_get(keys, 0);
    assert_string_equal(json_string_value(json_object_get(k, "kid")), "e1");
    assert_int_equal(json_object_size(k), 7);
    assert_null(json_object_get(k, "d"));
    assert_string_equal(json_string_value(json_object_get(k, "alg")), "ES256");
    k = json_array_get(keys, 1);
    assert_string_equal(json_string_value(json_object_get(k, "kid")), "r1");
    assert_int_equal(json_object_size(k), 6);
    assert_null(json_object_get(k, "d")), assert_null(json_object_get(k, "p")), assert_null(json_object_get(k, "x5c"));
    assert_string_equal(json_string_value(json_object_get(k, "n")), rsa_n);
    assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
    json_decref(keys);
    free(text), free(d), free(r), free(e);
    /* a leading zero byte of n (and padding) is re-encoded to the one strict spelling */
    param(rsa, OSSL_PKEY_PARAM_RSA_N, 0, 1, n0);
    assert_true(asprintf(&r, "{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"%s==\",\"e\":\"%s\"}", n0, rsa_e) > 0);
    text = doc(r);
    assert_int_equal(import(text, &keys), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "n")), rsa_n);
    json_decref(keys);
    free(text), free(r);
}

static void test_import_drops_hostile_keys(void **state)
{
    static const char *const bad[] = {
        "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\",\"alg\":\"HS256\"}",
        "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}",
        "{\"kty\":\"RSA\",\"kid\":\"n\",\"alg\":\"none\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"kid\":\"h\",\"alg\":\"HS256\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"kid\":\"p\",\"alg\":\"PS256\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"kid\":\"r\",\"alg\":\"RS384\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"kid\":\"u\",\"use\":\"enc\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"RSA\",\"kid\":\"e\",\"n\":\"%N\",\"e\":\"AAE\"}",     /* e = 1 */
        "{\"kty\":\"RSA\",\"kid\":\"e\",\"n\":\"%N\",\"e\":\"AQAA\"}",    /* even */
        "{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",  /* 24-bit modulus */
        "{\"kty\":\"RSA\",\"kid\":\"b\",\"n\":\"%N\",\"e\":\"AQ AB\"}",   /* not base64url */
        "{\"kty\":\"RSA\",\"kid\":\"b\",\"n\":\"%N\",\"e\":\"AQ+B\"}",    /* the other alphabet */
        "{\"kty\":\"RSA\",\"kid\":\"b\",\"n\":\"%N\",\"e\":65537}",       /* a number */
        "{\"kty\":\"RSA\",\"n\":\"%N\",\"e\":\"AQAB\"}",                  /* no kid */
        "{\"kty\":\"RSA\",\"kid\":\"../x\",\"n\":\"%N\",\"e\":\"AQAB\"}", /* kid not a name */
        "{\"kty\":\"RSA\",\"kid\":\"\",\"n\":\"%N\",\"e\":\"AQAB\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"c\",\"x\":\"%X\",\"y\":\"%Y\"}",
        "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"kid\":\"c\",\"x\":\"%X\",\"y\":\"%Y\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"c\",\"alg\":\"ES384\",\"x\":\"%X\",\"y\":\"%Y\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"c\",\"x\":\"%X\",\"y\":\"%X\"}", /* off the curve */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"o\",\"x\":\"%X\"}",
        "\"a string\"",
        "[]",
        "null",
        "7",
    };
    char big_n[2048];

    (void)state;
    memset(big_n, 'A', 1000), big_n[0] = 'w', big_n[1000] = '\0'; /* 750 bytes: RSA 6000 */
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char key[4096] = "", *text, *good = ec_jwk("good", ""), *all;
        for (const char *p = bad[i]; *p != '\0'; ++p) {
            const char *sub = p[0] == '%' && p[1] == 'N'   ? rsa_n
                              : p[0] == '%' && p[1] == 'X' ? ec_x
                              : p[0] == '%' && p[1] == 'Y' ? ec_y
                                                           : NULL;
            if (sub != NULL)
                strcat(key, sub), ++p;
            else
                strncat(key, p, 1);
        }
        text = doc(key);
        if (import(text, NULL) != -1)
            fail_msg("case %zu: a document with only %s was imported", i, bad[i]);
        free(text);
        assert_true(asprintf(&all, "%s,%s", key, good) > 0);
        text = doc(all);
        if (import(text, NULL) != 1)
            fail_msg("case %zu: the good key next to %s was not imported alone", i, bad[i]);
        free(text), free(all), free(good);
    }
    {
        char *k, *text;
        assert_true(asprintf(&k, "{\"kty\":\"RSA\",\"kid\":\"big\",\"n\":\"%s\",\"e\":\"AQAB\"}", big_n) > 0);
        text = doc(k);
        assert_int_equal(import(text, NULL), -1);
        free(text), free(k);
    }
}

static void test_import_documents(void **state)
{
    char *a = rsa_jwk("same", ""), *b = ec_jwk("same", ""), *c = ec_jwk("other", ""), *all, *text, *huge;
    size_t n = 1 << 20;

    (void)state;
    /* duplicate kids: both dropped, the rest kept */
    assert_true(asprintf(&all, "%s,%s,%s", a, b, c) > 0);
    text = doc(all);
    assert_int_equal(import(text, NULL), 1);
    free(text), free(all);
    /* not JSON, not an object, no keys array, a duplicate member, trailing bytes */
    assert_int_equal(import("", NULL), -1);
    assert_int_equal(import("[]", NULL), -1);
    assert_int_equal(import("{\"keys\":{}}", NULL), -1);
    assert_int_equal(import("{\"keys\":[],\"keys\":[]}", NULL), -1);
    assert_int_equal(import("{\"keys\":[]} x", NULL), -1);
    assert_int_equal(import("{\"keys\":[]}", NULL), -1); /* no usable key */
    /* 1 MB: refused before parsing */
    huge = malloc(n + 1);
    memset(huge, ' ', n);
    memcpy(huge, "{\"keys\":[", 9);
    memcpy(huge + n - 2, "]}", 2);
    huge[n] = '\0';
    assert_int_equal(import(huge, NULL), -1);
    free(huge);
    /* 20 distinct keys: 16 kept, the first by kid */
    {
        char *list = strdup(""), *k, *tmp;
        json_t *keys;
        for (int i = 0; i != 20; ++i) {
            char kid[16];
            snprintf(kid, sizeof(kid), "k%02d", 19 - i);
            k = ec_jwk(kid, "");
            assert_true(asprintf(&tmp, "%s%s%s", list, i ? "," : "", k) > 0);
            free(list), free(k);
            list = tmp;
        }
        text = doc(list);
        assert_int_equal(import(text, &keys), 16);
        assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), "k00");
        assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 15), "kid")), "k15");
        json_decref(keys);
        free(text), free(list);
    }
    free(a), free(b), free(c);
}

/* ---------------------------------------------------------------- store */

static json_t *normalize(const char *text, cph_error_t *err)
{
    json_t *in = parse(text), *out;

    memset(err, 0, sizeof(*err));
    out = cph_store_issuer_normalize(in, err);
    json_decref(in);
    return out;
}

#define GOOD                                                                                                                       \
    "\"name\":\"kc\",\"issuer\":\"https://kc.example/realms/shop\",\"jwks_url\":\"https://kc.example/certs\",\"system\":\"shop\""

static void test_normalize(void **state)
{
    static const struct {
        const char *body;
        const char *code, *path;
    } bad[] = {
        {"{" GOOD ",\"extra\":1}", "unknown_field", "/extra"},
        {"{\"issuer\":\"i\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "missing_field", "/name"},
        {"{\"name\":\"a/b\",\"issuer\":\"i\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/name"},
        {"{\"name\":\"n\",\"issuer\":\"cephalo\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/issuer"},
        {"{\"name\":\"n\",\"issuer\":\"\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/issuer"},
        {"{\"name\":\"n\",\"issuer\":\"a\\nb\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/issuer"},
        {"{\"name\":\"n\",\"issuer\":\"a\\u0000b\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/issuer"},
        {"{\"name\":\"n\",\"issuer\":7,\"jwks_url\":\"http://x\",\"system\":\"shop\"}", "invalid", "/issuer"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"ftp://x/certs\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"file:///etc/passwd\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"http://\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"https:///x\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"http://a b/\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"HTTP://x/\",\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":null,\"system\":\"shop\"}", "invalid", "/jwks_url"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"http://x\",\"system\":\"Shop\"}", "invalid", "/system"},
        {"{\"name\":\"n\",\"issuer\":\"i\",\"jwks_url\":\"http://x\"}", "missing_field", "/system"},
    };
    static const struct {
        const char *member, *value, *code;
    } members[] = {
        {"audience", "5", "invalid"},       {"audience", "\"\"", "invalid"},    {"refresh_s", "29", "invalid"},
        {"refresh_s", "86401", "invalid"},  {"refresh_s", "300.0", "invalid"},  {"refresh_s", "\"300\"", "invalid"},
        {"roles_claim", "\"\"", "invalid"}, {"roles_claim", "null", "invalid"}, {"groups_claim", "[]", "invalid"},
        {"name", "\"a b\"", "invalid"},
    };
    cph_error_t err;
    json_t *o;

    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        if ((o = normalize(bad[i].body, &err)) != NULL || strcmp(err.code, bad[i].code) != 0 || strcmp(err.path, bad[i].path) != 0)
            fail_msg("case %zu %s: %s at %s, want %s at %s", i, bad[i].body, o != NULL ? "accepted" : err.code, err.path,
                     bad[i].code, bad[i].path);
    }
    for (size_t i = 0; i != sizeof(members) / sizeof(members[0]); ++i) {
        json_t *in = parse("{" GOOD "}"), *v = json_loads(members[i].value, JSON_DECODE_ANY, NULL);
        char want[64];

        assert_non_null(v);
        json_object_set_new(in, members[i].member, v);
        memset(&err, 0, sizeof(err));
        snprintf(want, sizeof(want), "/%s", members[i].member);
        if ((o = cph_store_issuer_normalize(in, &err)) != NULL || strcmp(err.code, members[i].code) != 0 ||
            strcmp(err.path, want) != 0)
            fail_msg("%s = %s: %s at %s", members[i].member, members[i].value, o != NULL ? "accepted" : err.code, err.path);
        json_decref(in);
    }
    /* defaults, and the read-only members of a GET are accepted back and ignored */
    assert_non_null(o = normalize("{" GOOD ",\"keys\":3,\"fetched_at\":null,\"last_error\":\"x\",\"id\":9}", &err));
    assert_string_equal(json_string_value(json_object_get(o, "roles_claim")), "roles");
    assert_string_equal(json_string_value(json_object_get(o, "groups_claim")), "groups");
    assert_int_equal(json_integer_value(json_object_get(o, "refresh_s")), 300);
    assert_true(json_is_null(json_object_get(o, "audience")));
    assert_null(json_object_get(o, "keys"));
    json_decref(o);
}

/* One store operation inside cph_db_write: 'c' create obj, 'u' update key with obj, 'd' delete key. */
typedef struct st_op_t {
    char op;
    const char *key;
    json_t *obj;
} op_t;

static int on_op(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    op_t *o = p;
    int64_t id = 0;

    change->action = "test";
    change->entity_type = "issuer";
    if (o->op != 'c' && (change->before = cph_store_issuer_get(db, o->key, err)) == NULL)
        return -1;
    id = json_integer_value(json_object_get(change->before, "id"));
    if (o->op == 'c')
        return cph_store_issuer_insert(db, o->obj, &id, err);
    return o->op == 'u' ? cph_store_issuer_update(db, id, o->obj, err) : cph_store_issuer_delete(db, id, err);
}

/* Runs one operation (text: a request body, normalised first); 0 or -1 with err. */
static int write_op(cph_db_t *db, char op, const char *key, const char *text, cph_error_t *err)
{
    op_t o = {op, key, NULL};
    uint64_t version;
    int ret;

    memset(err, 0, sizeof(*err));
    if (text != NULL && (o.obj = normalize(text, err)) == NULL)
        fail_msg("normalize refused %s: %s at %s", text, err->code, err->path);
    ret = cph_db_write(db, "test", on_op, &o, &version, err);
    json_decref(o.obj);
    return ret;
}

static json_t *get(cph_db_t *db, const char *key)
{
    cph_error_t err;
    json_t *o;

    cph_db_lock(db);
    o = cph_store_issuer_get(db, key, &err);
    cph_db_unlock(db);
    return o;
}

/* The current snapshot body's auth.issuers (new reference, NULL when absent), checked to build on the data plane. */
static json_t *snap_issuers(cph_db_t *db, uint64_t *version)
{
    json_t *cur = cph_db_current_snapshot(db, 1), *body = json_object_get(cur, "body"), *out;
    char hash[CPH_HASH_SIZE] = "";
    cph_snapshot_t *s;
    cph_error_t err;

    assert_non_null(cur);
    if ((s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err)) == NULL)
        fail_msg("the data plane refuses the snapshot: %s at %s: %s", err.code, err.path, err.msg);
    cph_snapshot_release(s);
    *version = (uint64_t)json_integer_value(json_object_get(cur, "version"));
    out = json_incref(json_object_get(json_object_get(body, "auth"), "issuers"));
    json_decref(cur);
    return out;
}

static void test_store(void **state)
{
    cph_db_t *db = ((fixture_t *)*state)->db;
    cph_error_t err;
    json_t *o;
    uint64_t v1, v2;

    assert_int_equal(write_op(db, 'c', NULL, "{" GOOD ",\"refresh_s\":60,\"audience\":\"gw\"}", &err), 0);
    assert_non_null(o = get(db, "kc"));
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 0);
    assert_true(json_is_null(json_object_get(o, "fetched_at")));
    assert_string_equal(json_string_value(json_object_get(o, "system")), "shop");
    assert_string_equal(json_string_value(json_object_get(o, "audience")), "gw");
    json_decref(o);
    /* no keys yet: not in the snapshot */
    assert_null(snap_issuers(db, &v1));
    /* taken name, taken iss, unknown system */
    assert_int_equal(write_op(db, 'c', NULL, "{" GOOD "}", &err), -1);
    assert_string_equal(err.code, "conflict"), assert_string_equal(err.path, "/name");
    assert_int_equal(
        write_op(db, 'c', NULL,
                 "{\"name\":\"kc2\",\"issuer\":\"https://kc.example/realms/shop\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}",
                 &err),
        -1);
    assert_string_equal(err.code, "conflict"), assert_string_equal(err.path, "/issuer");
    assert_int_equal(
        write_op(db, 'c', NULL, "{\"name\":\"kc2\",\"issuer\":\"i2\",\"jwks_url\":\"http://x\",\"system\":\"nope\"}", &err), -1);
    assert_string_equal(err.code, "unknown_system"), assert_string_equal(err.path, "/system");
    /* at most 16 */
    for (int i = 2; i <= 16; ++i) {
        char body[256];
        snprintf(body, sizeof(body), "{\"name\":\"i%d\",\"issuer\":\"iss-%d\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", i,
                 i);
        assert_int_equal(write_op(db, 'c', NULL, body, &err), 0);
    }
    assert_int_equal(
        write_op(db, 'c', NULL, "{\"name\":\"i17\",\"issuer\":\"iss-17\",\"jwks_url\":\"http://x\",\"system\":\"shop\"}", &err),
        -1);
    assert_string_equal(err.code, "conflict");
    assert_int_equal(write_op(db, 'd', "i16", NULL, &err), 0);
    assert_int_equal(write_op(db, 'd', "i16", NULL, &err), -1);
    assert_string_equal(err.code, "not_found");
    /* the system cannot go while an issuer is in it */
    {
        int64_t sid;
        o = cph_store_system_get(db, "shop", &err);
        sid = json_integer_value(json_object_get(o, "id"));
        json_decref(o);
        cph_db_lock(db);
        assert_int_equal(cph_store_system_delete(db, sid, &err), -1);
        cph_db_unlock(db);
        assert_string_equal(err.code, "conflict");
    }
    assert_null(snap_issuers(db, &v2));
    assert_true(v2 > v1);
}

/* ---------------------------------------------------------------- sync_jwks */

/* The sync row of issuer name (new reference). */
static json_t *sync_row(cph_db_t *db, const char *name)
{
    cph_error_t err;
    json_t *rows, *row, *out = NULL;
    size_t i;

    cph_db_lock(db);
    rows = cph_store_issuer_sync_list(db, &err);
    cph_db_unlock(db);
    assert_non_null(rows);
    json_array_foreach(rows, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "name")), name) == 0)
            out = json_incref(row);
    }
    json_decref(rows);
    assert_non_null(out);
    return out;
}

static int apply(cph_db_t *db, const char *name, const char *text, char *why)
{
    json_t *row = sync_row(db, name);
    int r = cph_sync_jwks_apply(db, row, text, text != NULL ? strlen(text) : 0, why, 256);

    json_decref(row);
    return r;
}

static void test_apply(void **state)
{
    cph_db_t *db = ((fixture_t *)*state)->db;
    char *r = rsa_jwk("r1", ",\"d\":\"AQAB\",\"qi\":\"AQAB\""), *e = ec_jwk("e1", ""), *both, *text, *text2, why[256] = "";
    json_t *issuers, *o, *keys;
    uint64_t v0, v1, v2;
    cph_error_t err;
    char *dump;

    assert_int_equal(write_op(db, 'c', NULL, "{" GOOD ",\"roles_claim\":\"realm_access.roles\"}", &err), 0);
    assert_null(snap_issuers(db, &v0));
    assert_true(asprintf(&both, "%s,%s", r, e) > 0);
    text = doc(both);
    assert_int_equal(apply(db, "kc", text, why), 1);
    assert_non_null(issuers = snap_issuers(db, &v1));
    assert_true(v1 == v0 + 1);
    assert_int_equal(json_array_size(issuers), 1);
    o = json_array_get(issuers, 0);
    assert_string_equal(json_string_value(json_object_get(o, "issuer")), "https://kc.example/realms/shop");
    assert_string_equal(json_string_value(json_object_get(o, "system")), "shop");
    assert_string_equal(json_string_value(json_object_get(o, "roles_claim")), "realm_access.roles");
    assert_true(json_is_null(json_object_get(o, "audience")));
    keys = json_object_get(o, "keys");
    assert_int_equal(json_array_size(keys), 2);
    dump = json_dumps(issuers, 0);
    assert_null(strstr(dump, "\"d\"")), assert_null(strstr(dump, "\"qi\""));
    free(dump);
    json_decref(issuers);
    o = get(db, "kc");
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 2);
    assert_true(json_is_string(json_object_get(o, "fetched_at")));
    assert_true(json_is_null(json_object_get(o, "last_error")));
    json_decref(o);
    /* the same document again (keys in another order): no new version */
    assert_true(asprintf(&text2, "{\"keys\":[%s,%s]}", e, r) > 0);
    assert_int_equal(apply(db, "kc", text2, why), 0);
    json_decref(snap_issuers(db, &v2));
    assert_true(v2 == v1);
    /* a failing fetch and a document without a usable key: last-known-good kept, last_error set, no version */
    strcpy(why, "fetching the JWKS failed: Couldn't connect to server");
    assert_int_equal(apply(db, "kc", NULL, why), -1);
    assert_int_equal(apply(db, "kc", "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}", why), -1);
    o = get(db, "kc");
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 2);
    assert_non_null(strstr(json_string_value(json_object_get(o, "last_error")), "no usable"));
    json_decref(o);
    json_decref(issuers = snap_issuers(db, &v2));
    assert_true(v2 == v1);
    /* a rotation: one key replaced */
    free(text);
    text = doc(e);
    assert_int_equal(apply(db, "kc", text, why), 1);
    issuers = snap_issuers(db, &v2);
    assert_true(v2 == v1 + 1);
    assert_int_equal(json_array_size(json_object_get(json_array_get(issuers, 0), "keys")), 1);
    json_decref(issuers);
    /* a fetch that raced an admin update (stale updated_at) writes nothing */
    {
        json_t *row = sync_row(db, "kc");
        json_object_set_new(row, "updated_at", json_string("1970-01-01T00:00:00.000Z"));
        free(text);
        text = doc(r);
        assert_int_equal(cph_sync_jwks_apply(db, row, text, strlen(text), why, sizeof(why)), -1);
        json_decref(row);
        json_decref(issuers = snap_issuers(db, &v0));
        assert_true(v0 == v2);
    }
    /* changing the JWKS URL drops the keys: they were another document's */
    assert_int_equal(write_op(db, 'u', "kc",
                              "{\"name\":\"kc\",\"issuer\":\"https://kc.example/realms/shop\",\"jwks_url\":"
                              "\"https://kc.example/other\",\"system\":\"shop\"}",
                              &err),
                     0);
    o = get(db, "kc");
    assert_int_equal(json_integer_value(json_object_get(o, "keys")), 0);
    json_decref(o);
    assert_null(snap_issuers(db, &v0));
    free(text), free(text2), free(both), free(r), free(e);
}

static void test_fetch_refusals(void **state)
{
    char why[256] = "", *body = NULL;
    size_t len = 0;
    atomic_int stop;

    (void)state;
    atomic_init(&stop, 0);
    assert_int_equal(cph_sync_jwks_fetch("ftp://127.0.0.1/x", &stop, &body, &len, why, sizeof(why)), -1);
    assert_null(body);
    assert_true(why[0] != '\0');
    why[0] = '\0';
    assert_int_equal(cph_sync_jwks_fetch("file:///etc/passwd", &stop, &body, &len, why, sizeof(why)), -1);
    assert_null(body);
    assert_true(why[0] != '\0');
    why[0] = '\0';
    assert_int_equal(cph_sync_jwks_fetch("http://127.0.0.1:1/jwks", &stop, &body, &len, why, sizeof(why)), -1);
    assert_true(why[0] != '\0');
    atomic_store(&stop, 1);
    assert_int_equal(cph_sync_jwks_fetch("http://127.0.0.1:1/jwks", &stop, &body, &len, why, sizeof(why)), -1);
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
    cph_error_t err;
    json_t *sys = parse("{\"code\":\"shop\",\"name\":\"Shop\"}");
    int64_t id;

    db_fixture_setup(state, "issuer-test");
    assert_int_equal(cph_db_ensure_snapshot(((fixture_t *)*state)->db, &err), 0);
    cph_db_lock(((fixture_t *)*state)->db);
    assert_int_equal(cph_store_system_insert(((fixture_t *)*state)->db, sys, &id, &err), 0);
    cph_db_unlock(((fixture_t *)*state)->db);
    json_decref(sys);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_keeps_public_signing_keys),
        cmocka_unit_test(test_import_drops_hostile_keys),
        cmocka_unit_test(test_import_documents),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply, setup, teardown),
        cmocka_unit_test(test_fetch_refusals),
    };

    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    if (rsa == NULL || ec == NULL)
        return 1;
    param(rsa, OSSL_PKEY_PARAM_RSA_N, 0, 0, rsa_n);
    param(rsa, OSSL_PKEY_PARAM_RSA_E, 0, 0, rsa_e);
    param(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, 0, ec_x);
    param(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, 0, ec_y);
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return ret;
}
