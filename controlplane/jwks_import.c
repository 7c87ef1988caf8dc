/*
 * jwks_import: an identity provider's JWKS document -> our public keys (jwks_import.h).
 *
 * The document comes from a URL an admin typed and a server we do not control, so it is read as hostile: a size cap
 * before parsing, strict JSON, and a whitelist per key. A key is rebuilt from its public numbers only (so a JWKS that
 * publishes private members by mistake, or an HMAC secret, cannot leak them into the snapshot) and in exactly one
 * spelling (strict base64url, no leading zero bytes), so the same keys always give the same snapshot hash and an
 * unchanged JWKS never bumps the version. The numbers must also form a key OpenSSL accepts (cph_auth_pkey_from_jwk,
 * the data plane's own builder): a key the data planes would refuse would make them refuse every snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "controlplane/jwks_import.h"
#include "dataplane/compile/auth.h"
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "cp/jwks_import"
#define DOC_KEYS_MAX 256
#define NUM_MAX 1024 /* decoded bytes of one number we look at (RSA 4096 is 512) */
#define RSA_MIN 256
#define RSA_MAX 512
#define EC_COORD 32

/* ---------------------------------------------------------------- base64url */

/*
 * A number member decoded into out (NUM_MAX bytes); leading zero bytes stripped when strip. The length, or -1.
 * Documents from elsewhere sometimes pad their numbers, so trailing '=' are dropped before the strict decoder (which
 * still refuses every other deviation, spare bits included).
 */
static long number(const json_t *jwk, const char *member, unsigned char *out, int strip)
{
    const json_t *v = json_object_get(jwk, member);
    size_t len = json_string_length(v);
    long n, z = 0;

    if (!json_is_string(v))
        return -1;
    while (len > 0 && json_string_value(v)[len - 1] == '=')
        --len;
    if ((n = cph_b64url_decode(json_string_value(v), len, out, NUM_MAX)) < 0)
        return -1;
    while (strip && z < n && out[z] == 0)
        ++z;
    memmove(out, out + z, (size_t)(n - z));
    return n - z;
}

/* Strict unpadded base64url of in[0..len) (len <= NUM_MAX) as a new JSON string. */
static json_t *b64url_string(const unsigned char *in, size_t len)
{
    char out[CPH_B64URL_ENCODE_CAP(NUM_MAX)];

    return json_stringn(out, cph_b64url_encode(in, len, out, sizeof(out)));
}

/* ---------------------------------------------------------------- one key */

static int valid_kid(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);

    if (s == NULL || len < 1 || len > 64 || strlen(s) != len)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static int is(const json_t *v, const char *want)
{
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0 && json_string_length(v) == strlen(want);
}

static json_t *rsa_key(const json_t *jwk)
{
    unsigned char n[NUM_MAX], e[NUM_MAX];
    long nl = number(jwk, "n", n, 1), el = number(jwk, "e", e, 1);
    uint32_t ev = 0;

    if (nl < RSA_MIN || nl > RSA_MAX || el < 1 || el > 4)
        return NULL;
    for (long i = 0; i != el; ++i)
        ev = (ev << 8) | e[i];
    if (ev < 3 || ev % 2 == 0)
        return NULL;
    return json_pack("{s:O, s:s, s:s, s:s, s:o, s:o}", "kid", json_object_get(jwk, "kid"), "alg", "RS256", "kty", "RSA", "use",
                     "sig", "n", b64url_string(n, (size_t)nl), "e", b64url_string(e, (size_t)el));
}

/* A coordinate of exactly 32 bytes: a shorter one is left-padded, a 33-byte one may carry one leading zero. */
static long coordinate(const json_t *jwk, const char *member, unsigned char out[EC_COORD])
{
    unsigned char buf[NUM_MAX];
    long n = number(jwk, member, buf, 1);

    if (n < 1 || n > EC_COORD)
        return -1;
    memset(out, 0, EC_COORD);
    memcpy(out + EC_COORD - n, buf, (size_t)n);
    return EC_COORD;
}

static json_t *ec_key(const json_t *jwk)
{
    unsigned char x[EC_COORD], y[EC_COORD];

    if (!is(json_object_get(jwk, "crv"), "P-256") || coordinate(jwk, "x", x) < 0 || coordinate(jwk, "y", y) < 0)
        return NULL;
    return json_pack("{s:O, s:s, s:s, s:s, s:s, s:o, s:o}", "kid", json_object_get(jwk, "kid"), "alg", "ES256", "kty", "EC", "use",
                     "sig", "crv", "P-256", "x", b64url_string(x, EC_COORD), "y", b64url_string(y, EC_COORD));
}

/* One JWK of the document -> our key (new), or NULL when it is not a usable public signing key. */
static json_t *import_key(const json_t *jwk)
{
    const json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg"), *kty = json_object_get(jwk, "kty");
    json_t *out = NULL;
    EVP_PKEY *pkey;

    if (!json_is_object(jwk) || (use != NULL && !is(use, "sig")) || !valid_kid(json_object_get(jwk, "kid")))
        return NULL;
    if (is(kty, "RSA") && (alg == NULL || is(alg, "RS256")))
        out = rsa_key(jwk);
    else if (is(kty, "EC") && (alg == NULL || is(alg, "ES256")))
        out = ec_key(jwk);
    if (out == NULL)
        return NULL;
    if ((pkey = cph_auth_pkey_from_jwk(out)) == NULL) { /* numbers that form no key: the data planes would refuse them */
        json_decref(out);
        return NULL;
    }
    EVP_PKEY_free(pkey);
    return out;
}

/* ---------------------------------------------------------------- the document */

static int by_kid(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "kid")),
                  json_string_value(json_object_get(*(json_t *const *)b, "kid")));
}

/* The usable keys of list, each kid once (a repeated kid drops every key of that kid), sorted by kid, capped. */
static json_t *collect(const json_t *list)
{
    json_t *seen = json_object(), *out = json_array(), *sorted[DOC_KEYS_MAX], *k;
    size_t n = 0, i;

    if (seen == NULL || out == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(list, i, k)
    {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        if (json_is_object(k) && kid != NULL && strlen(kid) == json_string_length(json_object_get(k, "kid")))
            json_object_set_new(seen, kid, json_integer(json_integer_value(json_object_get(seen, kid)) + 1));
    }
    json_array_foreach(list, i, k)
    {
        json_t *key =
            json_is_object(k) && json_integer_value(json_object_get(seen, json_string_value(json_object_get(k, "kid")))) == 1
                ? import_key(k)
                : NULL;
        if (key != NULL)
            sorted[n++] = key;
    }
    qsort(sorted, n, sizeof(sorted[0]), by_kid);
    for (i = 0; i != n; ++i)
        if (i < CPH_JWKS_KEYS_MAX)
            json_array_append_new(out, sorted[i]);
        else
            json_decref(sorted[i]);
    json_decref(seen);
    return out;
}

int cph_jwks_import(const char *doc, size_t len, json_t **keys, char *why, size_t why_cap)
{
    json_t *root = NULL;
    const json_t *list;
    int ret = -1;

    *keys = NULL;
    if (len > CPH_JWKS_DOC_MAX) {
        snprintf(why, why_cap, "the JWKS document is over %d bytes", CPH_JWKS_DOC_MAX);
        return -1;
    }
    if ((root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_is_object(root) ||
        !json_is_array(list = json_object_get(root, "keys"))) {
        snprintf(why, why_cap, "the JWKS document is not a JSON object with a \"keys\" array");
        goto Exit;
    }
    if (json_array_size(list) > DOC_KEYS_MAX) {
        snprintf(why, why_cap, "the JWKS document has more than %d keys", DOC_KEYS_MAX);
        goto Exit;
    }
    *keys = collect(list);
    if (json_array_size(*keys) == 0) {
        snprintf(why, why_cap, "the JWKS document has no usable RS256 or ES256 signing key");
        json_decref(*keys);
        *keys = NULL;
        goto Exit;
    }
    ret = 0;
Exit:
    json_decref(root);
    return ret;
}
