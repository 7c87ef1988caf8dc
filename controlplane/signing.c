/*
 * signing: the keys the control plane signs access tokens with.
 *
 * Keys are made with OpenSSL 3's EVP API (EVP_PKEY_Q_keygen: EC P-256 for ES256, RSA 2048 with e = 65537 for
 * RS256) and stored PEM encoded; the kid is 16 random bytes in hex, so it says nothing about the key. The public
 * JWK is derived from the stored public PEM on every read rather than stored, so the two can never disagree.
 *
 * Rotation keeps tokens valid: the old active key becomes "retiring" and stays in the JWKS until retire_after (the
 * moment it stopped signing + CPH_ACCESS_TOKEN_MAX_S), by which time every token it signed has expired. Retiring
 * keys past that moment are marked retired lazily - every read computes the effective state from the clock, and
 * the next rotation writes it - so no timer thread is needed and a read never writes.
 *
 * The private PEM is read by one query only, cph_signing_active(), for token.c's signing; its result goes into a
 * cph_signing_new_t that is wiped when cleared, so it cannot reach an answer, a log or the audit.
 *
 * A key may also come from Vault (--vault-signing-path, sync_vault.c): its row has the public half and a `source`
 * ("vault:<path>@<version>", migrations/0010) but no private half, which is held here in process memory only
 * (cph_signing_hold). After a restart, until Vault has given it again, signing fails with {unavailable} while
 * verification goes on from the stored public keys.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/rand.h>
#include "controlplane/signing.h"
#include "controlplane/ident.h"
#include "controlplane/store.h"
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "cp/signing"
#define RSA_BITS 2048
#define EC_COORD_BYTES 32

/* The effective state as of ?1 (now, RFC 3339 text). */
#define SELECT_KEY                                                                                                                 \
    "SELECT id, kid, alg, CASE WHEN state = 'retiring' AND retire_after <= ?1 THEN 'retired' ELSE state END AS st, "               \
    "created_at, rotated_at, retire_after, public_pem FROM signing_keys "

/* ---------------------------------------------------------------- generation */

/* Reads a memory BIO into a new NUL-terminated string. */
static char *bio_string(BIO *bio)
{
    char *data = NULL, *out;
    long len = BIO_get_mem_data(bio, &data);

    if (len <= 0 || (out = malloc((size_t)len + 1)) == NULL)
        return NULL;
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    return out;
}

static int write_pems(EVP_PKEY *pkey, cph_signing_new_t *k)
{
    BIO *pub = BIO_new(BIO_s_mem()), *priv = BIO_new(BIO_s_secmem());
    int ret = -1;

    if (pub == NULL || priv == NULL || PEM_write_bio_PUBKEY(pub, pkey) != 1 ||
        PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto Exit;
    k->public_pem = bio_string(pub);
    k->private_pem = bio_string(priv);
    ret = k->public_pem != NULL && k->private_pem != NULL ? 0 : -1;
Exit:
    BIO_free(pub);
    BIO_free(priv); /* a secure-heap BIO cleanses its memory when freed */
    return ret;
}

int cph_signing_new(const char *alg, cph_signing_new_t *k, cph_error_t *err)
{
    unsigned char raw[CPH_SIGNING_KID_BYTES];
    EVP_PKEY *pkey = NULL;

    memset(k, 0, sizeof(*k));
    if (alg == NULL || (strcmp(alg, "ES256") != 0 && strcmp(alg, "RS256") != 0))
        return cph_error_set(err, "invalid", "/alg", "must be \"ES256\" or \"RS256\"");
    pkey = strcmp(alg, "ES256") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
    if (pkey == NULL || RAND_bytes(raw, sizeof(raw)) != 1 || write_pems(pkey, k) != 0) {
        EVP_PKEY_free(pkey);
        cph_signing_new_clear(k);
        cph_log_error(MODULE, "cannot generate a %s key", alg);
        return cph_error_set(err, "internal", "", "cannot generate a key");
    }
    EVP_PKEY_free(pkey);
    snprintf(k->alg, sizeof(k->alg), "%s", alg);
    for (size_t i = 0; i < sizeof(raw); ++i)
        snprintf(k->kid + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

void cph_signing_new_clear(cph_signing_new_t *k)
{
    if (k->private_pem != NULL)
        OPENSSL_cleanse(k->private_pem, strlen(k->private_pem));
    free(k->private_pem);
    free(k->public_pem);
    k->private_pem = k->public_pem = NULL;
}

int cph_signing_rotation_alg(const json_t *body, const char **alg, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"alg", NULL};
    json_t *v;

    *alg = "ES256";
    if (!json_is_object(body))
        return cph_error_set(err, "invalid", "", "the body must be a JSON object");
    if (cph_ident_check_members(body, ALLOWED, err) != 0)
        return -1;
    if ((v = json_object_get(body, "alg")) == NULL)
        return 0;
    if (json_is_string(v) && strcmp(json_string_value(v), "ES256") == 0 && json_string_length(v) == 5)
        *alg = "ES256";
    else if (json_is_string(v) && strcmp(json_string_value(v), "RS256") == 0 && json_string_length(v) == 5)
        *alg = "RS256";
    else
        return cph_error_set(err, "invalid", "/alg", "must be \"ES256\" or \"RS256\"");
    return 0;
}

/* ---------------------------------------------------------------- JWK */

/* A big number as unpadded base64url, left-padded with zeros to pad bytes (0: its minimal length). */
static json_t *bn_b64url(const BIGNUM *bn, int pad)
{
    unsigned char bin[1024];
    char b64[CPH_B64URL_ENCODE_CAP(sizeof(bin))];
    int n = pad > 0 ? pad : BN_num_bytes(bn);

    if (n <= 0 || n > (int)sizeof(bin) || BN_bn2binpad(bn, bin, n) != n)
        return NULL;
    return json_stringn(b64, cph_b64url_encode(bin, (size_t)n, b64, sizeof(b64)));
}

/* Adds two big-number parameters of pkey to jwk as members m1, m2. Returns 0 or -1. */
static int add_params(json_t *jwk, const EVP_PKEY *pkey, const char *p1, const char *m1, const char *p2, const char *m2, int pad)
{
    BIGNUM *a = NULL, *b = NULL;
    json_t *ja = NULL, *jb = NULL;
    int ret = -1;

    if (EVP_PKEY_get_bn_param(pkey, p1, &a) == 1 && EVP_PKEY_get_bn_param(pkey, p2, &b) == 1 && (ja = bn_b64url(a, pad)) != NULL &&
        (jb = bn_b64url(b, pad)) != NULL) {
        json_object_set_new(jwk, m1, ja);
        json_object_set_new(jwk, m2, jb);
        ja = jb = NULL;
        ret = 0;
    }
    json_decref(ja);
    json_decref(jb);
    BN_free(a);
    BN_free(b);
    return ret;
}

static int fill_jwk(json_t *jwk, const char *alg, const EVP_PKEY *pkey)
{
    char group[32];
    size_t glen = 0;

    if (strcmp(alg, "ES256") == 0) {
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) != 1 ||
            strcmp(group, "prime256v1") != 0)
            return -1;
        json_object_set_new(jwk, "kty", json_string("EC"));
        json_object_set_new(jwk, "crv", json_string("P-256"));
        return add_params(jwk, pkey, OSSL_PKEY_PARAM_EC_PUB_X, "x", OSSL_PKEY_PARAM_EC_PUB_Y, "y", EC_COORD_BYTES);
    }
    if (strcmp(alg, "RS256") != 0 || !EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_get_bits(pkey) < RSA_BITS)
        return -1;
    json_object_set_new(jwk, "kty", json_string("RSA"));
    return add_params(jwk, pkey, OSSL_PKEY_PARAM_RSA_N, "n", OSSL_PKEY_PARAM_RSA_E, "e", 0);
}

json_t *cph_signing_jwk(const char *alg, const char *kid, const char *public_pem, cph_error_t *err)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    json_t *jwk = json_object();

    if (alg == NULL || kid == NULL || public_pem == NULL ||
        (bio = BIO_new_mem_buf(public_pem, (int)strnlen(public_pem, 1 << 16))) == NULL ||
        (pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) == NULL || fill_jwk(jwk, alg, pkey) != 0) {
        json_decref(jwk);
        jwk = NULL;
        cph_log_error(MODULE, "signing key %s: the stored public key is unusable", kid != NULL ? kid : "?");
        cph_error_set(err, "internal", "", "unusable signing key");
    } else {
        json_object_set_new(jwk, "kid", json_string(kid));
        json_object_set_new(jwk, "alg", json_string(alg));
        json_object_set_new(jwk, "use", json_string("sig"));
    }
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return jwk;
}

/* ---------------------------------------------------------------- reads */

static void format_time(time_t t, char out[32])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* A SELECT_KEY row as the API shows it. NULL with err when its public key is unusable. */
static json_t *row_to_json(sqlite3_stmt *st, cph_error_t *err)
{
    const char *kid = (const char *)sqlite3_column_text(st, 1), *alg = (const char *)sqlite3_column_text(st, 2);
    json_t *jwk = cph_signing_jwk(alg, kid, (const char *)sqlite3_column_text(st, 7), err);

    if (jwk == NULL)
        return NULL;
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0), "kid", kid, "alg",
                     alg, "state", (const char *)sqlite3_column_text(st, 3), "created_at", (const char *)sqlite3_column_text(st, 4),
                     "rotated_at", cph_ident_column_text(st, 5), "retire_after", cph_ident_column_text(st, 6), "jwk", jwk);
}

/* Runs SELECT_KEY + tail with ?1 = now (and ?2 = key when key != NULL); every row mapped into a new array. */
static json_t *select_keys(cph_db_t *db, const char *tail, time_t now, const char *key, cph_error_t *err)
{
    char sql[512], when[32];
    sqlite3_stmt *st = NULL;
    json_t *out = json_array(), *row;
    int rc;

    snprintf(sql, sizeof(sql), "%s%s", SELECT_KEY, tail);
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare signing key read");
        goto Error;
    }
    format_time(now, when);
    sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
    if (key != NULL)
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((row = row_to_json(st, err)) == NULL)
            goto Error;
        json_array_append_new(out, row);
    }
    if (rc != SQLITE_DONE) {
        cph_store_internal(db, err, "signing key read");
        goto Error;
    }
    sqlite3_finalize(st);
    return out;
Error:
    sqlite3_finalize(st);
    json_decref(out);
    return NULL;
}

json_t *cph_signing_list(cph_db_t *db, time_t now, cph_error_t *err)
{
    return select_keys(db, "ORDER BY id DESC", now, NULL, err);
}

json_t *cph_signing_get(cph_db_t *db, const char *key, time_t now, cph_error_t *err)
{
    int64_t id;
    char idbuf[24];
    json_t *rows, *out = NULL;

    if (cph_store_parse_id(key, &id) == 0) {
        snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
        rows = select_keys(db, "WHERE id = CAST(?2 AS INTEGER)", now, idbuf, err);
    } else {
        rows = select_keys(db, "WHERE kid = ?2", now, key, err);
    }
    if (rows == NULL)
        return NULL;
    if (json_array_size(rows) == 1)
        out = json_incref(json_array_get(rows, 0));
    else
        cph_error_set(err, "not_found", "", "no such signing_key");
    json_decref(rows);
    return out;
}

json_t *cph_signing_jwks(cph_db_t *db, time_t now, cph_error_t *err)
{
    json_t *rows = select_keys(db, "WHERE st IN ('active', 'retiring') ORDER BY st = 'active' DESC, id DESC", now, NULL, err);
    json_t *keys, *v;
    size_t i;

    if (rows == NULL)
        return NULL;
    keys = json_array();
    json_array_foreach(rows, i, v) json_array_append(keys, json_object_get(v, "jwk"));
    json_decref(rows);
    return json_pack("{s:o}", "keys", keys);
}

/* ---------------------------------------------------------------- rotation */

/* Runs sql (no result rows) with ?1 = now text and ?2 = retire_after text. */
static int exec_times(cph_db_t *db, const char *sql, const char *now, const char *retire_after, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare signing key update");
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    if (retire_after != NULL)
        sqlite3_bind_text(st, 2, retire_after, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "signing key update");
}

static int insert_key(cph_db_t *db, const cph_signing_new_t *k, const char *now, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "INSERT INTO signing_keys (kid, alg, public_pem, private_pem, source, state, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?6, 'active', ?5)",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare signing key insert");
    sqlite3_bind_text(st, 1, k->kid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, k->alg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, k->public_pem, -1, SQLITE_TRANSIENT);
    if (k->source[0] != '\0') { /* a key from Vault: its private half is never stored */
        sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 6, k->source, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_text(st, 4, k->private_pem, -1, SQLITE_STATIC); /* no copy of the private key in SQLite's heap */
        sqlite3_bind_null(st, 6);
    }
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    /* a UNIQUE failure here is the random kid colliding (about 2^-128 per pair) */
    if (cph_ident_step(db, st, "signing_key", "", "the generated kid is taken: retry", 0, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_signing_rotate(cph_db_t *db, const cph_signing_new_t *k, time_t now, cph_db_change_t *change, cph_error_t *err)
{
    json_t *old = select_keys(db, "WHERE state = 'active'", now, NULL, err);
    char when[32], until[32], idbuf[24];
    int64_t id = 0;

    if (old == NULL)
        return -1;
    change->before = json_array_size(old) > 0 ? json_incref(json_array_get(old, 0)) : NULL;
    json_decref(old);
    format_time(now, when);
    format_time(now + CPH_ACCESS_TOKEN_MAX_S, until);
    if (exec_times(db, "UPDATE signing_keys SET state = 'retired' WHERE state = 'retiring' AND retire_after <= ?1", when, NULL,
                   err) != 0 ||
        exec_times(db, "UPDATE signing_keys SET state = 'retiring', rotated_at = ?1, retire_after = ?2 WHERE state = 'active'",
                   when, until, err) != 0 ||
        insert_key(db, k, when, &id, err) != 0)
        return -1;
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
    if ((change->after = cph_signing_get(db, idbuf, now, err)) == NULL)
        return -1;
    change->action = change->before != NULL ? "rotate" : "create";
    change->entity_type = "signing_key";
    change->entity_id = id;
    return 0;
}

/* ---------------------------------------------------------------- first start */

typedef struct st_ensure_t {
    const cph_signing_new_t *key;
    int skipped;
} ensure_t;

static int has_active(cph_db_t *db, int *yes, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT 1 FROM signing_keys WHERE state = 'active'", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare active key check");
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    *yes = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "active key check");
}

static int on_ensure(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    ensure_t *e = p;
    int yes = 0;

    if (has_active(db, &yes, err) != 0)
        return -1;
    if (yes) { /* cannot happen at startup (one process, one thread); refuse rather than rotate behind an admin's back */
        e->skipped = 1;
        return cph_error_set(err, "conflict", "", "a signing key is already active");
    }
    return cph_signing_rotate(db, e->key, time(NULL), change, err);
}

int cph_signing_ensure(cph_db_t *db, cph_error_t *err)
{
    cph_signing_new_t k;
    ensure_t e = {&k, 0};
    uint64_t version = 0;
    int yes = 0, ret;

    cph_db_lock(db);
    ret = has_active(db, &yes, err);
    cph_db_unlock(db);
    if (ret != 0 || yes)
        return ret;
    if (cph_signing_new("ES256", &k, err) != 0)
        return -1;
    ret = cph_db_write(db, "system", on_ensure, &e, &version, err);
    if (ret == 0)
        cph_log_info(MODULE, "created the first signing key: ES256, kid %s (version %llu)", k.kid, (unsigned long long)version);
    else if (e.skipped)
        ret = 0;
    cph_signing_new_clear(&k);
    return ret;
}

/* ---------------------------------------------------------------- keys held for Vault */

static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static char held_source[320];
static char *held_pem;

void cph_signing_hold(const char *source, const char *private_pem)
{
    char *copy = source != NULL && private_pem != NULL ? strdup(private_pem) : NULL;

    pthread_mutex_lock(&held_mutex);
    if (held_pem != NULL)
        OPENSSL_cleanse(held_pem, strlen(held_pem));
    free(held_pem);
    held_pem = copy;
    snprintf(held_source, sizeof(held_source), "%s", copy != NULL ? source : "");
    pthread_mutex_unlock(&held_mutex);
}

/* k->private_pem = a copy of the held key when it is the one of k->source; 0, or -1 when not held. */
static int held_copy(cph_signing_new_t *k)
{
    pthread_mutex_lock(&held_mutex);
    if (held_pem != NULL && strcmp(held_source, k->source) == 0 && (k->private_pem = strdup(held_pem)) == NULL)
        cph_fatal(MODULE, "out of memory");
    pthread_mutex_unlock(&held_mutex);
    return k->private_pem != NULL ? 0 : -1;
}

int cph_signing_active_source(cph_db_t *db, char *buf, size_t cap, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    buf[0] = '\0';
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT source FROM signing_keys WHERE state = 'active'", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare active key source");
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "active key source");
}

/* The kid of a Vault key: the secret's, when it is a name, else SHA-256 of the DER public key, 16 bytes in hex. */
static int vault_kid(EVP_PKEY *pkey, const char *kid, cph_signing_new_t *k, cph_error_t *err)
{
    unsigned char *der = NULL, md[32];
    size_t len = kid != NULL ? strlen(kid) : 0;
    int n;

    if (kid != NULL) {
        if (len == 0 || len > 2 * CPH_SIGNING_KID_BYTES)
            return cph_error_set(err, "invalid", "/kid", "the kid must be 1-32 characters of [A-Za-z0-9._-]");
        for (size_t i = 0; i != len; ++i)
            if (!isalnum((unsigned char)kid[i]) && kid[i] != '.' && kid[i] != '_' && kid[i] != '-')
                return cph_error_set(err, "invalid", "/kid", "the kid must be 1-32 characters of [A-Za-z0-9._-]");
        memcpy(k->kid, kid, len + 1);
        return 0;
    }
    if ((n = i2d_PUBKEY(pkey, &der)) <= 0 || EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return cph_error_set(err, "internal", "", "cannot hash the public key");
    }
    OPENSSL_free(der);
    for (size_t i = 0; i < CPH_SIGNING_KID_BYTES; ++i)
        snprintf(k->kid + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* "ES256" for EC P-256, "RS256" for RSA of 2048 bits or more, else NULL. */
static const char *alg_of(EVP_PKEY *pkey)
{
    char group[32] = "";

    if (EVP_PKEY_is_a(pkey, "RSA"))
        return EVP_PKEY_get_bits(pkey) >= RSA_BITS ? "RS256" : NULL;
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) == 1 &&
        (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
        return "ES256";
    return NULL;
}

int cph_signing_from_pem(const char *private_pem, const char *kid, const char *source, cph_signing_new_t *k, cph_error_t *err)
{
    BIO *in = private_pem != NULL ? BIO_new_mem_buf(private_pem, -1) : NULL;
    EVP_PKEY *pkey = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    const char *alg = pkey != NULL ? alg_of(pkey) : NULL;
    int ret = -1;

    memset(k, 0, sizeof(*k));
    BIO_free(in);
    if (pkey == NULL)
        cph_error_set(err, "invalid", "/private_key", "not a PEM private key (or one protected by a passphrase)");
    else if (alg == NULL)
        cph_error_set(err, "invalid", "/private_key", "the key must be EC P-256 or RSA of at least 2048 bits");
    else if (vault_kid(pkey, kid, k, err) == 0 && write_pems(pkey, k) != 0)
        cph_error_set(err, "internal", "", "cannot encode the key");
    else if (k->kid[0] != '\0' && k->private_pem != NULL)
        ret = 0;
    if (ret == 0) {
        snprintf(k->alg, sizeof(k->alg), "%s", alg);
        snprintf(k->source, sizeof(k->source), "%s", source != NULL ? source : "");
    } else {
        cph_signing_new_clear(k);
    }
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return ret;
}

/* ---------------------------------------------------------------- keys for token.c */

/* A text column as a new string (NULL for SQL NULL). */
static char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    return t != NULL ? strdup((const char *)t) : NULL;
}

int cph_signing_active(cph_db_t *db, cph_signing_new_t *k, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    memset(k, 0, sizeof(*k));
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT kid, alg, public_pem, private_pem, source FROM signing_keys WHERE state = 'active'", -1, &st,
                           NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare active key read");
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(k->kid, sizeof(k->kid), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(k->alg, sizeof(k->alg), "%s", (const char *)sqlite3_column_text(st, 1));
        k->public_pem = column_dup(st, 2);
        k->private_pem = column_dup(st, 3);
        if (sqlite3_column_type(st, 4) == SQLITE_TEXT)
            snprintf(k->source, sizeof(k->source), "%s", (const char *)sqlite3_column_text(st, 4));
    }
    sqlite3_finalize(st); /* SQLite's copy of the private PEM goes with the statement */
    if (rc == SQLITE_ROW && k->private_pem == NULL && k->source[0] != '\0' && held_copy(k) != 0) {
        cph_signing_new_clear(k);
        return cph_error_set(err, "unavailable", "", "the signing key is in Vault, which has not given it since the start");
    }
    if (rc != SQLITE_ROW || k->public_pem == NULL || k->private_pem == NULL) {
        cph_signing_new_clear(k);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
            cph_log_error(MODULE, "no active signing key");
            return cph_error_set(err, "internal", "", "no active signing key");
        }
        return cph_store_internal(db, err, "active key read");
    }
    return 0;
}

int cph_signing_public(cph_db_t *db, const char *kid, time_t now, char alg[8], char **public_pem, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char when[32];
    int rc;

    *public_pem = NULL;
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT alg, public_pem FROM signing_keys WHERE kid = ?1 AND "
                           "(state = 'active' OR (state = 'retiring' AND retire_after > ?2))",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare public key read");
    format_time(now, when);
    sqlite3_bind_text(st, 1, kid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, when, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(alg, 8, "%s", (const char *)sqlite3_column_text(st, 0));
        *public_pem = column_dup(st, 1);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW && *public_pem != NULL)
        return 0;
    if (rc == SQLITE_DONE)
        return cph_error_set(err, "not_found", "", "no such signing key");
    return cph_store_internal(db, err, "public key read");
}
