/*
 * principal: who a request is, once authn has checked its credential. Produced by core/authn.c (a verified JWT or
 * API key), read by filter/authz.c (the decision), filter/proxy_head.c (the identity headers) and the control
 * plane's explain API. Every view points into the request's pool or into the snapshot's arena, both of which outlive
 * the request's use of it.
 */
#ifndef CPH_PRINCIPAL_H
#define CPH_PRINCIPAL_H

#include <stdint.h>
#include "dataplane/core/h2o_abi.h"

typedef enum en_cph_principal_kind_t {
    CPH_PRINCIPAL_NONE = 0, /* no credential was presented */
    CPH_PRINCIPAL_USER,     /* a JWT the control plane issued at login */
    CPH_PRINCIPAL_API_KEY   /* an API key (X-API-Key, Authorization: ApiKey or Basic) */
} cph_principal_kind_t;

typedef struct st_cph_principal_t {
    cph_principal_kind_t kind;
    h2o_iovec_t id;      /* user id (the JWT's sub, decimal) or the API key's id (decimal) */
    h2o_iovec_t name;    /* username (JWT "name") or the key's prefix */
    h2o_iovec_t system;  /* system code: JWT "sys", or the key's system */
    h2o_iovec_t *roles;  /* own role names in system (JWT "roles", the key's roles) */
    size_t num_roles;
    h2o_iovec_t *groups; /* group names in system */
    size_t num_groups;
    int superuser;       /* JWT "su": true; never for an API key */
    h2o_iovec_t jti;     /* JWT only */
    int64_t iat, exp;    /* JWT only; exp is the key's expires_at for an API key (0 = never) */
} cph_principal_t;

#endif
