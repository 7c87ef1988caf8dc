/*
 * token: issuing access tokens with libjwt, and reading back one of our own at logout.
 *
 * Issuing: the claims are built as one JSON object (jansson) and handed to libjwt in one jwt_add_grants_json call, so
 * types are exact (sub a string, iat/nbf/exp integers, roles/groups arrays); libjwt adds "alg" and "typ" to the
 * header, we add "kid". The alg is always the key's own (ES256 or RS256), never taken from anywhere else.
 *
 * Verifying (logout): libjwt 1.10 decides the algorithm from the token's header and skips the signature check when
 * given no key, so we never let the token choose. The header is decoded first, its kid picks one of our usable keys,
 * its alg must be that key's alg, jwt_decode runs with that key's public PEM (never NULL), and jwt_get_alg must
 * again equal the key's alg - a token forged as HS256 with our public PEM as the HMAC secret fails the last check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jwt.h>
#include <openssl/rand.h>
#include "controlplane/settings.h"
#include "controlplane/token.h"
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "cp/token"
#define HEADER_MAX 1024 /* base64url characters of a header we bother to decode */
#define TOKEN_MAX 65536

/* ---------------------------------------------------------------- issuing */

static json_t *claims_json(const cph_token_claims_t *c, int64_t now, int64_t exp, const char *jti)
{
    const cph_auth_settings_t *s = cph_settings_auth();
    char sub[24];
    json_t *o;

    snprintf(sub, sizeof(sub), "%lld", (long long)c->user_id);
    o = json_pack("{s:s, s:s, s:s, s:O, s:O, s:I, s:I, s:I, s:s, s:s}", "iss", s->issuer, "sub", sub, "sys", c->system, "roles",
                  c->roles, "groups", c->groups, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)exp, "jti", jti,
                  "name", c->username);
    if (o == NULL)
        return NULL;
    if (s->audience[0] != '\0')
        json_object_set_new(o, "aud", json_string(s->audience));
    if (c->superuser)
        json_object_set_new(o, "su", json_true());
    return o;
}

static int random_hex(char *out, size_t bytes)
{
    unsigned char raw[64];

    if (bytes > sizeof(raw) || RAND_bytes(raw, (int)bytes) != 1)
        return -1;
    for (size_t i = 0; i < bytes; ++i)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int cph_token_new_jti(char jti[2 * CPH_TOKEN_JTI_BYTES + 1])
{
    return random_hex(jti, CPH_TOKEN_JTI_BYTES);
}

int cph_token_issue(const cph_signing_new_t *key, const cph_token_claims_t *c, const char *jti, int64_t now, int ttl_s,
                    cph_token_t *out, cph_error_t *err)
{
    jwt_alg_t alg = jwt_str_alg(key->alg);
    json_t *claims = NULL;
    char *text = NULL;
    jwt_t *jwt = NULL;
    int ret = -1;

    memset(out, 0, sizeof(*out));
    if (ttl_s < 1)
        ttl_s = 1;
    if (ttl_s > CPH_ACCESS_TOKEN_MAX_S)
        ttl_s = CPH_ACCESS_TOKEN_MAX_S;
    if ((alg != JWT_ALG_ES256 && alg != JWT_ALG_RS256) || key->private_pem == NULL || !json_is_array(c->roles) ||
        !json_is_array(c->groups) || c->username == NULL || c->system == NULL || jti == NULL ||
        strlen(jti) != 2 * CPH_TOKEN_JTI_BYTES) {
        cph_log_error(MODULE, "cannot issue a token: bad key or claims");
        return cph_error_set(err, "internal", "", "cannot issue a token");
    }
    snprintf(out->jti, sizeof(out->jti), "%s", jti);
    if ((claims = claims_json(c, now, now + ttl_s, out->jti)) == NULL || (text = json_dumps(claims, JSON_COMPACT)) == NULL ||
        jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, text) != 0 || jwt_add_header(jwt, "kid", key->kid) != 0 ||
        jwt_set_alg(jwt, alg, (const unsigned char *)key->private_pem, (int)strlen(key->private_pem)) != 0 ||
        (out->jwt = jwt_encode_str(jwt)) == NULL) {
        cph_log_error(MODULE, "cannot sign a token with key %s", key->kid);
        cph_error_set(err, "internal", "", "cannot issue a token");
        goto Exit;
    }
    out->iat = now;
    out->exp = now + ttl_s;
    ret = 0;
Exit:
    jwt_free(jwt); /* libjwt wipes its copy of the key */
    free(text);
    json_decref(claims);
    if (ret != 0)
        cph_token_clear(out);
    return ret;
}

void cph_token_clear(cph_token_t *t)
{
    free(t->jwt);
    t->jwt = NULL;
}

/* ---------------------------------------------------------------- verifying our own */

/* Decodes the first segment (strict base64url, no padding) of jwt as a JSON object. NULL when it is not one. */
static json_t *decode_header(const char *jwt)
{
    const char *dot = strchr(jwt, '.');
    unsigned char raw[CPH_B64URL_DECODED_LEN(HEADER_MAX)];
    long n;

    if (dot == NULL || (n = cph_b64url_decode(jwt, (size_t)(dot - jwt), raw, sizeof(raw))) <= 0)
        return NULL;
    return json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
}

/* Exactly three non-empty segments. */
static int well_formed(const char *jwt)
{
    const char *a = strchr(jwt, '.'), *b = a != NULL ? strchr(a + 1, '.') : NULL;

    return a != NULL && b != NULL && a != jwt && b != a + 1 && b[1] != '\0' && strchr(b + 1, '.') == NULL;
}

static int jti_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CPH_TOKEN_JTI_MAX)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* The claims of a verified token: jti and exp, strictly typed. */
static int read_claims(jwt_t *jwt, char jti[CPH_TOKEN_JTI_MAX + 1], int64_t *exp)
{
    char *text = jwt_get_grants_json(jwt, NULL);
    json_t *claims = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *j = json_object_get(claims, "jti"), *e = json_object_get(claims, "exp");
    int ret = -1;

    if (json_is_string(j) && json_string_length(j) == strlen(json_string_value(j)) && jti_ok(json_string_value(j)) &&
        json_is_integer(e)) {
        snprintf(jti, CPH_TOKEN_JTI_MAX + 1, "%s", json_string_value(j));
        *exp = (int64_t)json_integer_value(e);
        ret = 0;
    }
    json_decref(claims);
    free(text);
    return ret;
}

int cph_token_verify_own(cph_db_t *db, const char *jwt, int64_t now, char jti[CPH_TOKEN_JTI_MAX + 1], int64_t *exp,
                         cph_error_t *err)
{
    json_t *head = NULL, *halg, *hkid;
    char alg[8] = "", *pem = NULL;
    jwt_t *decoded = NULL;
    int ret = -1;

    if (jwt == NULL || strnlen(jwt, TOKEN_MAX + 1) > TOKEN_MAX || !well_formed(jwt) || (head = decode_header(jwt)) == NULL)
        goto Invalid;
    halg = json_object_get(head, "alg");
    hkid = json_object_get(head, "kid");
    if (!json_is_string(halg) || !json_is_string(hkid) || json_string_length(hkid) != strlen(json_string_value(hkid)))
        goto Invalid;
    if (cph_signing_public(db, json_string_value(hkid), (time_t)now, alg, &pem, err) != 0) {
        if (strcmp(err->code, "internal") == 0)
            goto Exit;
        goto Invalid;
    }
    if (strcmp(json_string_value(halg), alg) != 0 || jwt_str_alg(alg) == JWT_ALG_NONE || jwt_str_alg(alg) == JWT_ALG_INVAL)
        goto Invalid;
    if (jwt_decode(&decoded, jwt, (const unsigned char *)pem, (int)strlen(pem)) != 0 || decoded == NULL ||
        jwt_get_alg(decoded) != jwt_str_alg(alg) || read_claims(decoded, jti, exp) != 0)
        goto Invalid;
    ret = 0;
    goto Exit;
Invalid:
    cph_error_set(err, "invalid_token", "", "the token is not one of ours");
Exit:
    jwt_free(decoded);
    free(pem);
    json_decref(head);
    return ret;
}
