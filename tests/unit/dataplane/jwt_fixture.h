/*
 * jwt_fixture: building test tokens with libjwt. Claims are a base object with a patch applied; the token is signed
 * by libjwt itself, so what the data plane verifies is what a real issuer would send.
 */
#ifndef CPH_TEST_JWT_FIXTURE_H
#define CPH_TEST_JWT_FIXTURE_H

#include <string.h>
#include <jansson.h>
#include <jwt.h>

/* base (its reference is taken) with the members of the JSON text patch set, a null member removing the claim;
 * compact JSON, a new string. */
static inline char *jwt_fixture_patch(json_t *base, const char *patch)
{
    json_t *p = json_loads(patch, 0, NULL), *v;
    const char *k;
    char *out;

    assert_non_null(base);
    assert_non_null(p);
    json_object_foreach(p, k, v)
    {
        if (json_is_null(v))
            json_object_del(base, k);
        else
            json_object_set(base, k, v);
    }
    out = json_dumps(base, JSON_COMPACT);
    json_decref(base), json_decref(p);
    return out;
}

/* A token of the claims (JSON text) signed by libjwt with alg and key (PEM or HMAC secret; NULL for alg none), header
 * kid (NULL: none); a new string. */
static inline char *jwt_fixture_sign(jwt_alg_t alg, const char *key, const char *kid, const char *claims)
{
    jwt_t *jwt = NULL;
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    if (kid != NULL)
        assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, key != NULL ? (int)strlen(key) : 0), 0);
    assert_non_null(tok = jwt_encode_str(jwt));
    jwt_free(jwt);
    return tok;
}

#endif
