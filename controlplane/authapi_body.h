/*
 * authapi_body: the request bodies of /auth/login, /auth/refresh and /auth/logout, read and checked without the
 * database or any password work (authapi.c answers a refusal 400 invalid with the message; tests/fuzz/fuzz_auth_body.c
 * drives it with hostile bodies). A message never repeats a value from the body: a password or a token must not come
 * back in an error.
 */
#ifndef CPH_AUTHAPI_BODY_H
#define CPH_AUTHAPI_BODY_H

#include <stddef.h>
#include <jansson.h>

#define CPH_AUTHAPI_USERNAME_MAX 128
#define CPH_AUTHAPI_EMAIL_MAX 254
#define CPH_AUTHAPI_SYSTEM_MAX 64
#define CPH_AUTHAPI_REFRESH_MAX 1024
#define CPH_AUTHAPI_MSG_MAX 96

typedef enum en_cph_authapi_route_t {
    CPH_AUTHAPI_LOGIN,
    CPH_AUTHAPI_REFRESH,
    CPH_AUTHAPI_LOGOUT,
} cph_authapi_route_t;

/** The members of a checked body (NULL when absent); they point into the parsed JSON object. */
typedef struct st_cph_authapi_body_t {
    json_t *root;         /* the parsed object, owned (cph_authapi_body_clear); NULL for an empty logout body */
    const char *username; /* login: exactly one of username and email, 1..128 / 1..254 bytes */
    const char *email;
    const char *password;      /* login: required, 1..CPH_PASSWORD_MAX bytes */
    const char *system;        /* login: required, 1..64 bytes */
    const char *refresh_token; /* refresh: required; logout: optional; 1..1024 bytes */
} cph_authapi_body_t;

/**
 * Parses buf (len bytes, not NUL-terminated; a logout body may be empty) as the body of route: a JSON object without
 * duplicate keys (and so without a NUL in any string: jansson refuses \u0000), no member but the route's, each a string
 * within its byte range. 0 with out filled (clear it after use), or -1 with msg (CPH_AUTHAPI_MSG_MAX bytes) saying what
 * is wrong and out cleared.
 */
int cph_authapi_body_read(cph_authapi_route_t route, const char *buf, size_t len, cph_authapi_body_t *out, char *msg);

/** Releases what cph_authapi_body_read kept; out is all NULL afterwards. */
void cph_authapi_body_clear(cph_authapi_body_t *out);

#endif
