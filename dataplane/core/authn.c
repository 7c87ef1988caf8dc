/*
 * core/authn: a credential + one snapshot -> a principal, or a refusal with a reason (core/authn.h). The same code
 * runs for every request (filter/authn.c) and in the control plane's explain API.
 *
 * JWTs (docs/access.md section 2). libjwt 1.10.2 verifies signatures but trusts the token too much: a
 * NULL key skips the check, the header's alg picks the algorithm (an RS256 public key PEM then works as an HS256
 * secret) and exp / nbf are not looked at. So everything but the signature maths is decided here, in this order:
 * the size (before reading a byte), exactly three non-empty segments of the base64url alphabet, the header and the
 * claims strict JSON objects (jansson, duplicate names refused), alg and kid strings, alg "none" in any spelling
 * refused, the kid found in the snapshot, the header's alg equal to the alg pinned to that key; only then is libjwt
 * called, always with the key's PEM (never NULL), and the alg it decoded checked again. The claims are read with
 * jansson from the payload we decoded ourselves: integers only for the times (a string or a real is refused),
 * issuer, audience, leeway, and the revocation lists last.
 *
 * External issuers (auth.issuers): when the token's iss names one, its header is checked against that issuer's own
 * keys only (a key of issuer A never verifies a token claiming issuer B, nor the control plane's), the signature as
 * above, then its claims: exp required, iat / nbf optional integers, the issuer's audience, sub any 1-256 printable,
 * jti optional; roles and groups come from the issuer's configured claims (absent = none; not an array = refused;
 * names that are not [A-Za-z0-9_.-]{1,64} dropped), the system is the issuer's and the principal is never a
 * superuser. A token whose iss is neither ours nor an issuer's and whose kid is unknown is "unknown_issuer".
 *
 * API keys (section C): "<prefix>.<secret>", looked up by prefix (binary search), SHA-256 of the secret compared in
 * constant time, expiry checked after the secret so an expired key's existence is told only to its holder.
 *
 * Nothing here logs, and no reason echoes the credential.
 */
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include "dataplane/compile/auth.h"
#include "dataplane/core/authn.h"
#include "dataplane/core/sha256.h"
#include "proto/proto.h"

#define MODULE "dp/core/authn"
#define MAX_NAMES 1024 /* roles / groups in one token */
#define MAX_JTI 128
#define MAX_USERNAME 256
#define MAX_SUB_DIGITS 18              /* fits int64_t */
#define MAX_TIME INT64_C(253402300799) /* 9999-12-31: keeps now +- leeway and the comparisons far from overflow */
#define MAX_SECRET 512

typedef struct st_claims_t {
    const char *sub, *sys, *jti, *name;
    const json_t *roles, *groups;
    int su;
    int64_t uid, iat, nbf, exp;
} claims_t;

/* ---------------------------------------------------------------- syntax */

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int is_code_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_prefix_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

/* Whether s[0..len) has min..max bytes, each accepted by ok. */
static int valid_chars(const char *s, size_t len, size_t min, size_t max, int (*ok)(char))
{
    size_t i;

    if (s == NULL || len < min || len > max)
        return 0;
    for (i = 0; i != len; ++i)
        if (!ok(s[i]))
            return 0;
    return 1;
}

static int valid_string(const json_t *v, size_t min, size_t max, int (*ok)(char))
{
    return json_is_string(v) && valid_chars(json_string_value(v), json_string_length(v), min, max, ok);
}

/* ---------------------------------------------------------------- JOSE */

/* Splits t[0..len) into exactly three non-empty segments of the base64url alphabet (no padding). 0 or -1. */
static int split(const char *t, size_t len, h2o_iovec_t seg[3])
{
    size_t n = 0, start = 0, i;

    for (i = 0; i <= len; ++i) {
        if (i == len || t[i] == '.') {
            if (n == 3 || i == start)
                return -1;
            seg[n++] = h2o_iovec_init(t + start, i - start);
            start = i + 1;
        } else if (!is_b64url(t[i])) {
            return -1;
        }
    }
    return n == 3 ? 0 : -1;
}

/*
 * A segment as a strict JSON object: canonical unpadded base64url (cph_b64url_decode: no impossible length, no stray
 * bits in the last character), then jansson with duplicate names refused. NULL when any of it fails.
 */
static json_t *decode_json(h2o_iovec_t seg, h2o_mem_pool_t *pool)
{
    size_t cap = CPH_B64URL_DECODED_LEN(seg.len);
    unsigned char *bin = h2o_mem_alloc_pool(pool, cap + 1);
    long n;
    json_t *obj;

    if ((n = cph_b64url_decode(seg.base, seg.len, bin, cap)) < 0)
        return NULL;
    if ((obj = json_loadb((const char *)bin, (size_t)n, JSON_REJECT_DUPLICATES, NULL)) != NULL && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

/* The header's checks up to the key (among issuer's keys, or the own ones when NULL): NULL with *key set, or the reason. */
static const char *check_header(const cph_auth_t *auth, const cph_auth_issuer_t *issuer, const json_t *header,
                                const cph_auth_key_t **key)
{
    const json_t *alg = json_object_get(header, "alg"), *kid = json_object_get(header, "kid"), *typ;

    if (!json_is_string(alg) || !json_is_string(kid) || json_object_get(header, "crit") != NULL)
        return "malformed"; /* crit: extensions we do not implement must not be ignored (RFC 7515 4.1.11) */
    if ((typ = json_object_get(header, "typ")) != NULL && !(json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0))
        return "malformed";
    if (strcasecmp(json_string_value(alg), "none") == 0)
        return "alg_mismatch";
    *key = issuer != NULL ? cph_auth_find_issuer_key(issuer, json_string_value(kid), json_string_length(kid))
                          : cph_auth_find_key(auth, json_string_value(kid), json_string_length(kid));
    if (*key == NULL || (*key)->pem.len == 0)
        return "unknown_kid";
    if (strcmp(json_string_value(alg), (*key)->alg) != 0)
        return "alg_mismatch";
    return NULL;
}

/* The signature, by libjwt, with the key's PEM and its pinned alg. NULL or the reason. */
static const char *check_signature(const cph_auth_key_t *key, const char *token, size_t len, h2o_mem_pool_t *pool)
{
    jwt_t *jwt = NULL;
    const char *reason = NULL;
    jwt_alg_t pinned = jwt_str_alg(key->alg);

    if (pinned != JWT_ALG_ES256 && pinned != JWT_ALG_RS256)
        return "alg_mismatch";
    if (jwt_decode(&jwt, h2o_strdup(pool, token, len).base, (const unsigned char *)key->pem.base, (int)key->pem.len) != 0 ||
        jwt == NULL)
        reason = "bad_signature";
    else if (jwt_get_alg(jwt) != pinned)
        reason = "alg_mismatch";
    jwt_free(jwt);
    return reason;
}

/* ---------------------------------------------------------------- claims */

/* claims[name] as an integer time in 0..MAX_TIME. 0 or -1 (absent, a string, a real, out of range). */
static int get_time(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(claims, name);

    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_TIME)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* An array (required) of at most MAX_NAMES names. */
static int valid_names(const json_t *arr)
{
    const json_t *v;
    size_t i;

    if (!json_is_array(arr) || json_array_size(arr) > MAX_NAMES)
        return 0;
    json_array_foreach(arr, i, v)
    {
        if (!valid_string(v, 1, 64, is_name_char))
            return 0;
    }
    return 1;
}

static int valid_aud(const json_t *aud)
{
    const json_t *v;
    size_t i;

    if (aud == NULL || json_is_string(aud))
        return 1;
    if (!json_is_array(aud) || json_array_size(aud) == 0 || json_array_size(aud) > 16)
        return 0;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return 0;
    }
    return 1;
}

static int valid_username(const json_t *v)
{
    size_t i, len = json_string_length(v);
    const char *s = json_string_value(v);

    if (s == NULL || len == 0 || len > MAX_USERNAME)
        return 0;
    for (i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* The shape of the claims (types and syntax): fills *cl, returns 0 or -1 ("bad_claims"). */
static int read_claims(const json_t *c, claims_t *cl)
{
    const json_t *sub = json_object_get(c, "sub"), *sys = json_object_get(c, "sys"), *jti = json_object_get(c, "jti");
    const json_t *su = json_object_get(c, "su"), *name = json_object_get(c, "name");
    size_t i;

    cl->roles = json_object_get(c, "roles");
    cl->groups = json_object_get(c, "groups");
    if (!valid_string(sub, 1, MAX_SUB_DIGITS, is_digit) || json_string_value(sub)[0] == '0' ||
        !valid_string(sys, 1, 64, is_code_char) || !valid_string(jti, 1, MAX_JTI, is_b64url) || !valid_names(cl->roles) ||
        !valid_names(cl->groups) || (su != NULL && !json_is_boolean(su)) || (name != NULL && !valid_username(name)) ||
        !valid_aud(json_object_get(c, "aud")) || get_time(c, "iat", &cl->iat) != 0 || get_time(c, "nbf", &cl->nbf) != 0 ||
        get_time(c, "exp", &cl->exp) != 0)
        return -1;
    cl->sub = json_string_value(sub);
    for (cl->uid = 0, i = 0; cl->sub[i] != '\0'; ++i)
        cl->uid = cl->uid * 10 + (cl->sub[i] - '0');
    cl->sys = json_string_value(sys);
    cl->jti = json_string_value(jti);
    cl->name = name != NULL ? json_string_value(name) : NULL;
    cl->su = json_is_true(su);
    return 0;
}

static int aud_contains(const json_t *aud, h2o_iovec_t want)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud))
        return h2o_memis(json_string_value(aud), json_string_length(aud), want.base, want.len);
    json_array_foreach(aud, i, v)
    {
        if (h2o_memis(json_string_value(v), json_string_length(v), want.base, want.len))
            return 1;
    }
    return 0;
}

/* What the claims say against the settings, the clock and the revocations: NULL or the reason. */
static const char *check_claims(const cph_auth_t *auth, const json_t *c, const claims_t *cl, time_t now)
{
    const cph_auth_settings_t *s = cph_auth_settings(auth);
    const json_t *iss = json_object_get(c, "iss");
    int64_t t = (int64_t)now;

    if (!json_is_string(iss) || !h2o_memis(json_string_value(iss), json_string_length(iss), s->issuer.base, s->issuer.len))
        return "wrong_issuer";
    if (s->audience.base != NULL && !aud_contains(json_object_get(c, "aud"), s->audience))
        return "wrong_audience";
    if (cl->exp <= t - s->leeway_s)
        return "expired";
    if (cl->iat > t + s->leeway_s || cl->nbf > t + s->leeway_s)
        return "not_yet_valid";
    if (cph_auth_jti_revoked(auth, cl->jti, strlen(cl->jti)) || cph_auth_user_revoked(auth, cl->uid, cl->iat))
        return "revoked";
    return NULL;
}

/* ---------------------------------------------------------------- principal */

static h2o_iovec_t pool_str(h2o_mem_pool_t *pool, const char *s)
{
    return s != NULL ? h2o_strdup(pool, s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

static h2o_iovec_t *pool_names(h2o_mem_pool_t *pool, const json_t *arr, size_t *num)
{
    h2o_iovec_t *out = NULL;
    const json_t *v;
    size_t i;

    if ((*num = json_array_size(arr)) == 0)
        return NULL;
    out = h2o_mem_alloc_pool(pool, *num * sizeof(*out));
    json_array_foreach(arr, i, v)
    {
        out[i] = h2o_strdup(pool, json_string_value(v), json_string_length(v));
    }
    return out;
}

static void fill_user(const claims_t *cl, h2o_mem_pool_t *pool, cph_principal_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = CPH_PRINCIPAL_USER;
    out->id = pool_str(pool, cl->sub);
    out->name = pool_str(pool, cl->name);
    out->system = pool_str(pool, cl->sys);
    out->roles = pool_names(pool, cl->roles, &out->num_roles);
    out->groups = pool_names(pool, cl->groups, &out->num_groups);
    out->superuser = cl->su;
    out->jti = pool_str(pool, cl->jti);
    out->iat = cl->iat;
    out->exp = cl->exp;
}

/* ---------------------------------------------------------------- external issuers */

/* The claim name of an external issuer: the top-level member of that name, else the dotted path ("realm_access.roles"). */
static const json_t *claim_at(const json_t *claims, h2o_iovec_t name)
{
    const json_t *v = json_object_get(claims, name.base);
    char buf[257], *seg, *save = NULL;

    if (v != NULL || memchr(name.base, '.', name.len) == NULL || name.len >= sizeof(buf))
        return v;
    memcpy(buf, name.base, name.len + 1);
    v = claims;
    for (seg = strtok_r(buf, ".", &save); seg != NULL && v != NULL; seg = strtok_r(NULL, ".", &save))
        v = json_is_object(v) ? json_object_get(v, seg) : NULL;
    return v;
}

/* A roles / groups claim: absent is none, an array keeps its valid names (others dropped), anything else is -1. */
static int external_names(const json_t *arr, h2o_mem_pool_t *pool, h2o_iovec_t **out, size_t *num)
{
    const json_t *v;
    size_t i;

    *out = NULL, *num = 0;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_NAMES)
        return -1;
    *out = h2o_mem_alloc_pool(pool, (json_array_size(arr) + 1) * sizeof(**out));
    json_array_foreach(arr, i, v)
    {
        if (valid_string(v, 1, 64, is_name_char))
            (*out)[(*num)++] = h2o_strdup(pool, json_string_value(v), json_string_length(v));
    }
    return 0;
}

static int is_printable(char c)
{
    return c >= 0x20 && c < 0x7f;
}

/* The claims of an external issuer's token: NULL with *out filled, or the reason. */
static const char *external_claims(const cph_auth_t *auth, const cph_auth_issuer_t *is, const json_t *c, time_t now,
                                   h2o_mem_pool_t *pool, cph_principal_t *out)
{
    const json_t *sub = json_object_get(c, "sub"), *jti = json_object_get(c, "jti");
    int64_t exp = 0, iat = 0, nbf = 0, t = (int64_t)now, leeway = cph_auth_settings(auth)->leeway_s;
    cph_principal_t p = {.kind = CPH_PRINCIPAL_USER};

    if (!valid_string(sub, 1, 256, is_printable) || (jti != NULL && !valid_string(jti, 1, MAX_JTI, is_b64url)) ||
        !valid_aud(json_object_get(c, "aud")) || get_time(c, "exp", &exp) != 0 ||
        (json_object_get(c, "iat") != NULL && get_time(c, "iat", &iat) != 0) ||
        (json_object_get(c, "nbf") != NULL && get_time(c, "nbf", &nbf) != 0) ||
        external_names(claim_at(c, is->roles_claim), pool, &p.roles, &p.num_roles) != 0 ||
        external_names(claim_at(c, is->groups_claim), pool, &p.groups, &p.num_groups) != 0)
        return "bad_claims";
    if (is->audience.base != NULL && !aud_contains(json_object_get(c, "aud"), is->audience))
        return "wrong_audience";
    if (exp <= t - leeway)
        return "expired";
    if (iat > t + leeway || nbf > t + leeway)
        return "not_yet_valid";
    if (jti != NULL && cph_auth_jti_revoked(auth, json_string_value(jti), json_string_length(jti)))
        return "revoked";
    p.id = h2o_strdup(pool, json_string_value(sub), json_string_length(sub));
    p.system = is->system; /* the issuer's, whatever the token says; never a superuser */
    p.jti = jti != NULL ? h2o_strdup(pool, json_string_value(jti), json_string_length(jti)) : h2o_iovec_init(NULL, 0);
    p.iat = iat;
    p.exp = exp;
    *out = p;
    return NULL;
}

/* The header, signature and claims of a token whose iss names an external issuer. NULL or the reason. */
static const char *verify_external(const cph_auth_t *auth, const cph_auth_issuer_t *is, const json_t *header, const json_t *claims,
                                   const char *token, size_t len, time_t now, h2o_mem_pool_t *pool, cph_principal_t *out)
{
    const cph_auth_key_t *key = NULL;
    const char *reason;

    if ((reason = check_header(auth, is, header, &key)) != NULL || (reason = check_signature(key, token, len, pool)) != NULL)
        return reason;
    return external_claims(auth, is, claims, now, pool, out);
}

/* The own issuer's checks (docs/access.md section 2); an unknown kid on a token of an issuer nobody knows is "unknown_issuer". */
static const char *verify_own(const cph_auth_t *auth, const json_t *header, const json_t *claims, const char *token, size_t len,
                              time_t now, h2o_mem_pool_t *pool, cph_principal_t *out)
{
    const cph_auth_settings_t *s = cph_auth_settings(auth);
    const json_t *iss = json_object_get(claims, "iss");
    const cph_auth_key_t *key = NULL;
    const char *reason;
    claims_t cl;

    if ((reason = check_header(auth, NULL, header, &key)) != NULL) {
        if (strcmp(reason, "unknown_kid") == 0 && json_is_string(iss) &&
            !h2o_memis(json_string_value(iss), json_string_length(iss), s->issuer.base, s->issuer.len))
            reason = "unknown_issuer";
        return reason;
    }
    if ((reason = check_signature(key, token, len, pool)) != NULL)
        return reason;
    if (read_claims(claims, &cl) != 0)
        return "bad_claims";
    if ((reason = check_claims(auth, claims, &cl, now)) != NULL)
        return reason;
    fill_user(&cl, pool, out);
    return NULL;
}

/* ---------------------------------------------------------------- entry points */

cph_authn_result_t cph_authn_verify_jwt(const cph_snapshot_t *snap, const char *token, size_t len, time_t now, h2o_mem_pool_t *pool,
                                        cph_principal_t *out, const char **reason)
{
    const cph_auth_t *auth = snap != NULL ? snap->auth : NULL;
    const cph_auth_issuer_t *is = NULL;
    const json_t *iss;
    json_t *header = NULL, *claims = NULL;
    h2o_iovec_t seg[3];

    *reason = NULL;
    if (len > cph_auth_settings(auth)->max_token_bytes) {
        *reason = "too_large";
        goto Exit;
    }
    if (split(token, len, seg) != 0 || (header = decode_json(seg[0], pool)) == NULL ||
        (claims = decode_json(seg[1], pool)) == NULL) {
        *reason = "malformed";
        goto Exit;
    }
    /* the iss picks the key table (the payload is read before the signature only to choose whose keys verify it) */
    if ((iss = json_object_get(claims, "iss")) != NULL && json_is_string(iss))
        is = cph_auth_find_issuer(auth, json_string_value(iss), json_string_length(iss));
    *reason = is != NULL ? verify_external(auth, is, header, claims, token, len, now, pool, out)
                         : verify_own(auth, header, claims, token, len, now, pool, out);
Exit:
    json_decref(header);
    json_decref(claims);
    return *reason == NULL ? CPH_AUTHN_OK : CPH_AUTHN_INVALID;
}

static void fill_api_key(const cph_api_key_t *k, cph_principal_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = CPH_PRINCIPAL_API_KEY;
    out->id = k->id_str;
    out->name = k->prefix;
    out->system = k->system;
    out->roles = k->roles;
    out->num_roles = k->num_roles;
    out->groups = k->groups;
    out->num_groups = k->num_groups;
    out->exp = k->expires_at;
}

cph_authn_result_t cph_authn_verify_api_key(const cph_snapshot_t *snap, const char *key, size_t len, const char *secret,
                                            size_t secret_len, time_t now, cph_principal_t *out, const char **reason)
{
    const cph_api_key_t *k;
    const char *dot;
    unsigned char digest[CPH_SHA256_LEN];

    if (secret == NULL) {
        if ((dot = memchr(key, '.', len)) == NULL) {
            *reason = "malformed";
            return CPH_AUTHN_INVALID;
        }
        secret = dot + 1;
        secret_len = (size_t)(key + len - secret);
        len = (size_t)(dot - key);
    }
    *reason = "malformed";
    if (!valid_chars(key, len, 8, 12, is_prefix_char) || secret_len == 0 || secret_len > MAX_SECRET)
        return CPH_AUTHN_INVALID;
    *reason = "unknown_key";
    if ((k = cph_auth_find_api_key(snap != NULL ? snap->auth : NULL, key, len)) == NULL)
        return CPH_AUTHN_INVALID;
    *reason = "bad_secret";
    cph_sha256(secret, secret_len, digest);
    if (CRYPTO_memcmp(digest, k->secret_sha256, sizeof(digest)) != 0)
        return CPH_AUTHN_INVALID;
    *reason = "expired";
    if (k->expires_at != 0 && (int64_t)now >= k->expires_at)
        return CPH_AUTHN_INVALID;
    *reason = NULL;
    fill_api_key(k, out);
    return CPH_AUTHN_OK;
}
